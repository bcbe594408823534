"""One disruption under `wrk -t2 -c32` through nginx: the requests it cost, and how
long until a process of a new instance answers (scenarios 3w and 3r).

wrk runs for `cfg.wrk_lead` seconds of steady load, then the disruption
happens; a tight poll through nginx waits for the first 200 from a process
that was not part of the old instance; wrk goes on for `cfg.wrk_tail`
seconds more and is stopped with SIGINT (it then prints its summary). Every
failure wrk counts in that run is charged to the disruption.
"""

from __future__ import annotations

import signal
import time
from typing import Any, Callable, Optional

from bench.common import first_response, response_pid, serves
from bench.config import Settings
from bench.contenders import Contender
from tests.kit import wrk
from tests.kit.nginx import Nginx
from tests.kit.procs import alive, children, kill_pids
from tests.kit.wait import wait_until

WRK_CAP = 300  # seconds; wrk is stopped long before, this only bounds a broken run
RECOVERY_TIMEOUT = 60.0


def _master(c: Contender) -> Optional[int]:
    try:
        pid = c.master_pid()
    except (KeyError, ValueError, RuntimeError):  # between masters, or not spawned yet
        return None
    return pid if alive(pid) else None


def settled(c: Contender, nginx: Nginx) -> int:
    """Wait until `c` serves through nginx from a live master; return that master."""
    wait_until(c.ready, 60, f"{c.label} ready")
    wait_until(lambda: serves(nginx.port, "v1"), 60, f"{c.label} serving")
    return wait_until(lambda: _master(c), 60, f"{c.label}'s uWSGI master")


def disrupt(
    c: Contender, nginx: Nginx, cfg: Settings, act: Callable[[int], None]
) -> dict[str, Any]:
    """Run `act(master_pid)` under wrk; the row of what it cost."""
    master = settled(c, nginx)
    old = [master, *children(master)]
    proc = wrk.start(nginx.port, WRK_CAP)
    try:
        time.sleep(cfg.wrk_lead)
        t0 = time.monotonic()
        act(master)
        acted = time.monotonic() - t0
        t1 = first_response(
            nginx.port,
            lambda s, b: s == 200 and response_pid(b) not in old,
            RECOVERY_TIMEOUT,
        )
        time.sleep(cfg.wrk_tail)
    finally:
        proc.send_signal(signal.SIGINT)
        r = wrk.finish(proc, 60)
    deadline = time.monotonic() + cfg.settle
    while any(alive(p) for p in old) and time.monotonic() < deadline:
        time.sleep(0.02)
    left = [p for p in old if alive(p)]
    kill_pids(left)
    return {
        "seconds": None if t1 is None else t1 - t0,
        "act_seconds": acted,
        "leftovers": len(left),
        **r,
    }


def describe(row: dict[str, Any]) -> str:
    back = "never" if row["seconds"] is None else f"{row['seconds'] * 1000:.0f} ms"
    return (
        f"back in {back}, {row['failed']} failed of {row['requests']}, "
        f"worst {row['latency_max_us'] / 1000:.0f} ms, {row['leftovers']} left over"
    )
