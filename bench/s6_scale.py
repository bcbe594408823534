"""Scenario 6: big watched trees: time to arm the watcher, RSS, reloads per 5,000-file checkout."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from bench.common import make_app, make_tree, remove, scratch
from bench.config import Settings
from bench.ours import Ours
from tests.kit.app import set_version
from tests.kit.procs import rss_mib
from tests.kit.wait import wait_until

ARMED = "for code pushes"


def max_user_watches() -> int:
    return int(Path("/proc/sys/fs/inotify/max_user_watches").read_text())


def checkout(files: list[Path], count: int, stamp: int) -> None:
    """Rewrite `count` files spread over the tree, as `git checkout` does: a stream of writes."""
    step = max(1, len(files) // count)
    for i, path in enumerate(files[::step][:count]):
        path.write_text(f"N = {stamp}\n")
        if i % 200 == 0:
            time.sleep(0.02)


def run(cfg: Settings, log: Any) -> list[dict[str, Any]]:
    rows = []
    for size in cfg.scale_sizes:
        tree = scratch(f"scale{size}")
        try:
            app = make_app(tree / "app")
            t = time.monotonic()
            files = make_tree(tree / "app", size)
            log(f"scale: made {size} files in {time.monotonic() - t:.1f} s")
            for rep in range(cfg.scale_reps):
                tmp = scratch("scale-run")
                c = Ours(tmp, tree / "app")
                try:
                    c.start()
                    # Both waits are measured: poll finely.
                    armed = wait_until(
                        lambda c=c: ARMED in c.log() and time.monotonic(), 300, "armed", 0.02
                    )
                    wait_until(c.ready, 120, "running")
                    time.sleep(1.0)
                    rss = rss_mib(c.control_pid())
                    backend = c.state().get("watching")
                    generation = c.state()["generation"]
                    t0 = time.monotonic()
                    checkout(files, cfg.checkout_files, rep + 2)
                    set_version(app, f"v{rep + 2}")
                    t1 = time.monotonic()
                    wait_until(
                        lambda c=c, g=generation: (
                            c.state().get("generation", 0) > g
                            and c.state().get("state") == "running"
                        ),
                        120,
                        "the reload",
                        0.02,
                    )
                    picked = time.monotonic() - t1
                    time.sleep(cfg.settle)  # a straggling second reload would have begun by now
                    rss_after = rss_mib(c.control_pid())
                    reloads = c.reloads()
                finally:
                    c.close()
                    remove(tmp)
                row = {
                    "files": size,
                    "rep": rep,
                    "armed_s": armed - c.spawned_at,
                    "rss_mib": rss,
                    "rss_after_checkout_mib": rss_after,
                    "backend": backend,
                    "checkout_s": t1 - t0,
                    "reload_done_s": picked,
                    "reloads": reloads,
                    "max_user_watches": max_user_watches(),
                }
                rows.append(row)
                log(
                    f"scale {size} #{rep}: armed in {row['armed_s']:.2f} s ({backend}), "
                    f"RSS {rss:.1f} MiB, {reloads} reload(s) for a {cfg.checkout_files}-file "
                    "checkout"
                )
        finally:
            remove(tree)
    return rows
