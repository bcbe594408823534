"""Scenario 2: failed requests and worst latency under wrk while 3 reloads happen."""

from __future__ import annotations

import time
from typing import Any

from tests.kit import wrk
from bench.common import make_app, remove, scratch, serves, set_version
from bench.config import Settings
from bench.contenders import RELOADERS, is_ours, make, mtime_spacing, served
from tests.kit.wait import WaitTimeout, wait_until

RELOAD_AT = {3: (0.15, 0.45, 0.75), 1: (0.3,)}  # saves, as fractions of the wrk run


def _catch_up(port: int, version: str, timeout: float) -> bool:
    try:
        wait_until(lambda: serves(port, version), timeout, f"{version} served")
    except WaitTimeout:
        return False
    return True


def run(cfg: Settings, log: Any) -> list[dict[str, Any]]:
    rows = []
    for variant in cfg.variants:
        for name in RELOADERS:
            tmp = scratch("zd")
            app = make_app(tmp / "app", variant)
            c = make(name, tmp, tmp / "app")
            n = 1
            try:
                with served(c, tmp) as nginx:
                    for rep in range(cfg.zd_reps):
                        wait_until(lambda c=c: not c.busy(), 60, "no reload under way")
                        time.sleep(mtime_spacing(c))
                        before = c.reloads() if is_ours(c) else 0  # type: ignore[union-attr]
                        start = time.monotonic()
                        proc = wrk.start(nginx.port, cfg.zd_duration)
                        for at in RELOAD_AT[cfg.zd_reloads]:
                            time.sleep(max(0.0, start + at * cfg.zd_duration - time.monotonic()))
                            n += 1
                            set_version(app, f"v{n}")
                            c.after_save()
                        r = wrk.finish(proc, cfg.zd_duration + 60)
                        row = {"contender": name, "variant": variant, "rep": rep, **r}
                        row["stale"] = not _catch_up(nginx.port, f"v{n}", 15.0)
                        if row["stale"]:
                            # The last save went unseen (py-autoreload scans mtimes it
                            # recorded after the reload began): save again to move on.
                            set_version(app, f"v{n}")
                            c.after_save()
                            if not _catch_up(nginx.port, f"v{n}", 30.0):
                                rows.append(row)
                                log(f"zero-downtime {name}: v{n} never served; next contender")
                                break
                        if is_ours(c):
                            wait_until(lambda c=c: not c.busy(), 60, "reloads done")
                            row["reloads"] = c.reloads() - before  # type: ignore[union-attr]
                        rows.append(row)
                        log(
                            f"zero-downtime {variant:11} {name:15} #{rep}: {r['failed']} failed of "
                            f"{r['requests']}, worst {r['latency_max_us'] / 1000:.0f} ms"
                            + (", LAST SAVE NEVER SERVED" if row["stale"] else "")
                        )
            finally:
                remove(tmp)
    return rows


def run_baseline(cfg: Settings, log: Any) -> list[dict[str, Any]]:
    """The same wrk runs with no save at all: the worst latency this machine gives anyway."""
    rows = []
    tmp = scratch("zd-base")
    make_app(tmp / "app")
    c = make("none", tmp, tmp / "app")
    try:
        with served(c, tmp) as nginx:
            for rep in range(cfg.zd_reps):
                r = wrk.finish(wrk.start(nginx.port, cfg.zd_duration), cfg.zd_duration + 60)
                rows.append(
                    {"contender": "no reload (uWSGI alone)", "variant": "fast", "rep": rep, **r}
                )
                log(
                    f"zero-downtime baseline #{rep}: {r['failed']} failed of {r['requests']}, "
                    f"worst {r['latency_max_us'] / 1000:.0f} ms"
                )
    finally:
        remove(tmp)
    return rows
