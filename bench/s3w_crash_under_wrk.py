"""Scenario 3w: kill -9 of the uWSGI master under `wrk -t2 -c32` through nginx.

Scenario 3's crash under the heavy load of scenario 2: the requests each
crash costs and the time until a process of the new master answers. One
instance per contender is crashed `cfg.crash_reps` times, each crash after
at least `cfg.wrk_lead` seconds of serving: longer than the supervisor's
`restart.reset_after` (1 s), so each one is a first crash for its backoff.

Ours holds the app socket across masters, so a crash should cost only the
requests in flight in the workers (at most processes x threads); plain uWSGI
binds its own socket, which dies with its master.
"""

from __future__ import annotations

import os
import signal
from typing import Any

from bench.common import PROCESSES, make_app, remove, scratch
from bench.config import Settings
from bench.contenders import make, served
from bench.under_wrk import describe, disrupt

# (row label, contender): ours as scenario 3 runs it (graceful reloads; no reload here).
CONTENDERS = [
    ("ours", "ours: graceful"),
    ("supervisord", "supervisord"),
    ("shell loop", "shell loop"),
]
THREADS = 1  # uWSGI's default: one thread per worker
IN_FLIGHT = PROCESSES * THREADS  # requests a crash can catch in the workers


def run(cfg: Settings, log: Any) -> list[dict[str, Any]]:
    rows = []
    for label, name in CONTENDERS:
        tmp = scratch("crashw")
        make_app(tmp / "app")
        c = make(name, tmp, tmp / "app")
        try:
            with served(c, tmp) as nginx:
                for rep in range(cfg.crash_reps):
                    row = {
                        "contender": label,
                        "rep": rep,
                        **disrupt(c, nginx, cfg, lambda pid: os.kill(pid, signal.SIGKILL)),
                    }
                    rows.append(row)
                    log(f"crash under wrk {label:12} #{rep}: {describe(row)}")
        finally:
            remove(tmp)
    return rows
