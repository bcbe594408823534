"""Scenario 3: kill -9 of the uWSGI master -> first response from a new instance.

Each contender is started afresh for every kill, so each kill is a first
crash. One more row kills the same supervised instance again and again, a few
seconds apart: each after more than `restart.reset_after` (1 s) of serving, so
the supervisor's backoff (100 ms, doubling, for crashes within it) does not
apply. Scenarios 3w and 3r disrupt under `wrk -t2 -c32` instead of this light load.
"""

from __future__ import annotations

import os
import signal
import time
from typing import Any

from bench.common import first_response, make_app, remove, response_pid, scratch, serves
from bench.config import Settings
from bench.contenders import Contender, make, served
from tests.kit.load import Load
from tests.kit.nginx import Nginx
from tests.kit.procs import alive, children, kill_pids
from tests.kit.wait import wait_until

CONTENDERS = ["ours: graceful", "supervisord", "shell loop"]
IN_A_ROW = "ours: crashes in a row"


def _crash(c: Contender, nginx: Nginx, load: Load, cfg: Settings) -> dict[str, Any]:
    """Kill the master once; how long until a new process answers, and what it cost."""
    wait_until(c.ready, 60, "running")
    wait_until(lambda: serves(nginx.port, "v1"), 60, "serving")
    time.sleep(0.5)
    master = c.master_pid()
    old = [master, *children(master)]
    t0 = time.monotonic()
    os.kill(master, signal.SIGKILL)
    t1 = first_response(nginx.port, lambda s, b: s == 200 and response_pid(b) not in old, 60)
    time.sleep(cfg.settle)
    left = [p for p in old if alive(p)]
    kill_pids(left)
    failed = load.failed_between(t0, t1 if t1 is not None else time.monotonic())
    return {"seconds": None if t1 is None else t1 - t0, "failed": failed, "leftovers": len(left)}


def _log(log: Any, label: str, rep: int, row: dict[str, Any]) -> None:
    back = "never" if row["seconds"] is None else f"{row['seconds'] * 1000:.0f} ms"
    log(
        f"crash {label:22} #{rep}: back in {back}, {row['failed']} failed, "
        f"{row['leftovers']} left over"
    )


def run(cfg: Settings, log: Any) -> list[dict[str, Any]]:
    rows = []
    for name in CONTENDERS:
        for rep in range(cfg.crash_reps):
            tmp = scratch("crash")
            make_app(tmp / "app")
            c = make(name, tmp, tmp / "app")
            try:
                with served(c, tmp) as nginx, Load(nginx.port, threads=2, pause=0.01) as load:
                    row = {"contender": name, "rep": rep, **_crash(c, nginx, load, cfg)}
            finally:
                remove(tmp)
            rows.append(row)
            _log(log, name, rep, row)
    if cfg.crash_reps < 2:
        return rows  # one crash is no row of crashes
    tmp = scratch("crash")
    make_app(tmp / "app")
    c = make("ours: graceful", tmp, tmp / "app")
    try:
        with served(c, tmp) as nginx, Load(nginx.port, threads=2, pause=0.01) as load:
            for rep in range(cfg.crash_reps):
                row = {"contender": IN_A_ROW, "rep": rep, **_crash(c, nginx, load, cfg)}
                rows.append(row)
                _log(log, IN_A_ROW, rep, row)
    finally:
        remove(tmp)
    return rows
