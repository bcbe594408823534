"""Scenario 2: failed requests and worst latency under wrk while 3 reloads happen.

Scenario 2t runs the same wrk runs over a loopback TCP socket.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from bench.common import make_app, remove, scratch, serves
from bench.config import Settings
from bench.contenders import RELOADERS, Contender, is_ours, make, mtime_spacing, served
from tests.kit import wrk
from tests.kit.app import set_version
from tests.kit.net import free_port
from tests.kit.nginx import Nginx
from tests.kit.wait import WaitTimeout, wait_until

RELOAD_AT = {3: (0.15, 0.45, 0.75), 1: (0.3,)}  # saves, as fractions of the wrk run
# Over TCP: ours with swap (its zero-downtime mode) beside the plain-uWSGI
# reloaders that detect a save soonest (scenario 1); py-autoreload's `r` is the
# same graceful reload.
TCP_RELOADERS = ["ours: swap", "inotify+r", "touch-reload"]


def _catch_up(port: int, version: str, timeout: float) -> bool:
    try:
        wait_until(lambda: serves(port, version), timeout, f"{version} served")
    except WaitTimeout:
        return False
    return True


def _runs(
    c: Contender, app: Path, nginx: Nginx, cfg: Settings, row: dict[str, Any], log: Any
) -> list[dict[str, Any]]:
    """`cfg.zd_reps` wrk runs, each with `cfg.zd_reloads` saves; a row per run."""
    rows: list[dict[str, Any]] = []
    name, n = row["contender"], 1
    for rep in range(cfg.zd_reps):
        wait_until(lambda: not c.busy(), 60, "no reload under way")
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
        this = {**row, "rep": rep, **r}
        this["stale"] = not _catch_up(nginx.port, f"v{n}", 15.0)
        if this["stale"]:
            # The last save went unseen (py-autoreload scans mtimes it
            # recorded after the reload began): save again to move on.
            set_version(app, f"v{n}")
            c.after_save()
            if not _catch_up(nginx.port, f"v{n}", 30.0):
                rows.append(this)
                log(f"zero-downtime {name}: v{n} never served; next contender")
                break
        if is_ours(c):
            wait_until(lambda: not c.busy(), 60, "reloads done")
            this["reloads"] = c.reloads() - before  # type: ignore[union-attr]
        rows.append(this)
        log(
            f"zero-downtime {row['variant']:11} {row.get('socket', 'unix'):4} {name:15} #{rep}: "
            f"{r['failed']} failed of {r['requests']}, worst {r['latency_max_us'] / 1000:.0f} ms"
            + (", LAST SAVE NEVER SERVED" if this["stale"] else "")
        )
    return rows


def run(cfg: Settings, log: Any) -> list[dict[str, Any]]:
    rows = []
    for variant in cfg.variants:
        for name in RELOADERS:
            tmp = scratch("zd")
            app = make_app(tmp / "app", variant)
            c = make(name, tmp, tmp / "app")
            try:
                with served(c, tmp) as nginx:
                    row = {"contender": name, "variant": variant}
                    rows += _runs(c, app, nginx, cfg, row, log)
            finally:
                remove(tmp)
    return rows


def run_tcp(cfg: Settings, log: Any) -> list[dict[str, Any]]:
    """Scenario 2t: the same runs with the app socket on 127.0.0.1:PORT (fast app)."""
    rows = []
    for name in TCP_RELOADERS:
        tmp = scratch("zdtcp")
        app = make_app(tmp / "app")
        c = make(name, tmp, tmp / "app", app_socket=f"127.0.0.1:{free_port()}")
        try:
            with served(c, tmp) as nginx:
                row = {"contender": name, "variant": "fast", "socket": "tcp"}
                rows += _runs(c, app, nginx, cfg, row, log)
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
