"""Scenario 3: kill -9 of the uWSGI master -> first response from a new instance."""

from __future__ import annotations

import os
import signal
import time
from typing import Any

from bench.common import (
    LightLoad,
    alive,
    children,
    first_response,
    kill_pids,
    make_app,
    remove,
    response_pid,
    scratch,
    serves,
    wait_until,
)
from bench.config import Settings
from bench.contenders import make, served

CONTENDERS = ["ours: graceful", "supervisord", "shell loop"]


def run(cfg: Settings, log: Any) -> list[dict[str, Any]]:
    rows = []
    for name in CONTENDERS:
        tmp = scratch("crash")
        make_app(tmp / "app")
        c = make(name, tmp, tmp / "app")
        try:
            with served(c, tmp) as nginx, LightLoad(nginx.port) as load:
                for rep in range(cfg.crash_reps):
                    wait_until(lambda c=c: not c.busy(), 60, "running")
                    wait_until(lambda: serves(nginx.port, "v1"), 60, "serving")
                    time.sleep(0.5)
                    master = c.master_pid()
                    old = [master, *children(master)]
                    t0 = time.monotonic()
                    os.kill(master, signal.SIGKILL)
                    t1 = first_response(
                        nginx.port,
                        lambda s, b, old=old: s == 200 and response_pid(b) not in old,
                        60,
                    )
                    time.sleep(cfg.settle)
                    left = [p for p in old if alive(p)]
                    kill_pids(left)
                    seconds = None if t1 is None else t1 - t0
                    failed = load.failed_between(t0, t1 if t1 is not None else time.monotonic())
                    rows.append(
                        {
                            "contender": name,
                            "rep": rep,
                            "seconds": seconds,
                            "failed": failed,
                            "leftovers": len(left),
                        }
                    )
                    log(
                        f"crash {name:15} #{rep}: back in "
                        + ("never" if seconds is None else f"{seconds * 1000:.0f} ms")
                        + f", {failed} failed, {len(left)} left over"
                    )
        finally:
            remove(tmp)
    return rows
