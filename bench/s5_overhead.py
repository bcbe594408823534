"""Scenario 5: idle RSS, CPU and wake-ups of the supervising process, and
py-autoreload's polling CPU.

The four contenders idle side by side (2 cores, all idle): our supervisor
watching a tree of ~1,000 files, supervisord, uWSGI with py-autoreload=1 and
uWSGI alone. The window is cut into slices; each slice is one sample.
"""

from __future__ import annotations

import time
from typing import Any

from bench.alternatives import PlainUwsgi, Supervisord
from bench.common import make_app, make_tree, remove, scratch
from bench.config import Settings
from bench.ours import Ours
from supervisor.cadence import QUIET_AFTER
from tests.kit.procs import children, cpu_ns, cpu_seconds, rss_mib, wakeups
from tests.kit.wait import wait_until


def run(cfg: Settings, log: Any) -> list[dict[str, Any]]:
    tmps = {k: scratch(f"idle-{k}") for k in ("ours", "supervisord", "autoreload", "plain")}
    for tmp in tmps.values():
        make_app(tmp / "app")
        make_tree(tmp / "app", cfg.tree_files)
    ours = Ours(tmps["ours"], tmps["ours"] / "app")
    sd = Supervisord(tmps["supervisord"], tmps["supervisord"] / "app")
    auto = PlainUwsgi(tmps["autoreload"], tmps["autoreload"] / "app", "py-autoreload")
    plain = PlainUwsgi(tmps["plain"], tmps["plain"] / "app", "none")
    everyone = [ours, sd, auto, plain]
    rows = []
    try:
        for c in everyone:
            c.start()
        for c in everyone:
            wait_until(c.ready, 60, f"{c.label} ready")
        # Workers spawned, imports done; and our supervisor past its first 30 s,
        # when it still samples uWSGI every second (cadence.QUIET_AFTER).
        time.sleep(cfg.settle if cfg.quick else max(cfg.settle, QUIET_AFTER + 1))
        trees = {
            "auto": [auto.master_pid(), *children(auto.master_pid())],
            "plain": [plain.master_pid(), *children(plain.master_pid())],
        }
        watched = {"ours": ours.control_pid(), "supervisord": sd.control_pid()}
        span = cfg.idle_seconds / cfg.idle_slices
        for i in range(cfg.idle_slices):
            before = {k: cpu_seconds(p) for k, p in watched.items()}
            woke = {k: wakeups(p) for k, p in watched.items()}
            ns = {k: cpu_ns(p) for k, p in watched.items()}
            tree_before = {k: sum(cpu_seconds(p) for p in ps) for k, ps in trees.items()}
            master_before = {k: cpu_seconds(ps[0]) for k, ps in trees.items()}
            t0 = time.monotonic()
            time.sleep(span)
            dt = time.monotonic() - t0
            row: dict[str, Any] = {"slice": i, "seconds": dt}
            for k, p in watched.items():
                row[f"{k}_cpu_pct"] = 100 * (cpu_seconds(p) - before[k]) / dt
                row[f"{k}_rss_mib"] = rss_mib(p)
                row[f"{k}_wakeups_per_min"] = 60 * (wakeups(p) - woke[k]) / dt
                row[f"{k}_cpu_exact_pct"] = 100 * (cpu_ns(p) - ns[k]) / 1e9 / dt
            for k, ps in trees.items():
                row[f"uwsgi_{k}_cpu_pct"] = (
                    100 * (sum(cpu_seconds(p) for p in ps) - tree_before[k]) / dt
                )
                row[f"uwsgi_{k}_master_cpu_pct"] = (
                    100 * (cpu_seconds(ps[0]) - master_before[k]) / dt
                )
            row["autoreload_extra_cpu_pct"] = row["uwsgi_auto_cpu_pct"] - row["uwsgi_plain_cpu_pct"]
            rows.append(row)
            log(
                f"idle slice {i}: ours {row['ours_rss_mib']:.1f} MiB "
                f"{row['ours_cpu_pct']:.2f}% CPU ({row['ours_cpu_exact_pct']:.3f}% exact); "
                f"supervisord {row['supervisord_rss_mib']:.1f} MiB "
                f"{row['supervisord_cpu_pct']:.2f}% ({row['supervisord_cpu_exact_pct']:.3f}%); "
                "wake-ups/min: ours "
                f"{row['ours_wakeups_per_min']:.0f}, supervisord "
                f"{row['supervisord_wakeups_per_min']:.0f}; "
                f"py-autoreload extra {row['autoreload_extra_cpu_pct']:.2f}%"
            )
    finally:
        for c in everyone:
            c.close()
        for tmp in tmps.values():
            remove(tmp)
    return rows
