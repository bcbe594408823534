"""Scenario 7: stop, idle and with a slow request in flight: time until gone, leftovers."""

from __future__ import annotations

import threading
import time
from typing import Any, Optional

from bench.alternatives import Supervisord
from bench.common import make_app, marked_pids, remove, scratch
from bench.config import Settings
from bench.contenders import served
from bench.ours import Ours
from tests.kit.net import try_get
from tests.kit.procs import kill_pids

LEFTOVER_WAIT = 3.0  # seconds after the stop returned for processes to go


def run(cfg: Settings, log: Any) -> list[dict[str, Any]]:
    rows = []
    for name in ("ours", "supervisord"):
        # The quick smoke run covers the in-flight case only (it exercises more).
        for case in ("in-flight",) if cfg.quick else ("idle", "in-flight"):
            for rep in range(cfg.stop_reps):
                tmp = scratch("stop")
                make_app(tmp / "app")
                c: Any = (
                    Ours(tmp, tmp / "app")
                    if name == "ours"
                    else Supervisord(tmp, tmp / "app", stopwaitsecs=cfg.supervisord_stopwaitsecs)
                )
                result: dict[str, Optional[tuple[int, str]]] = {}
                try:
                    with served(c, tmp) as nginx:
                        slow = None
                        if case == "in-flight":
                            slow = threading.Thread(
                                target=lambda result=result, address=nginx.address: result.update(
                                    r=try_get(address, "/slow?s=2", timeout=60)
                                )
                            )
                            slow.start()
                            time.sleep(0.3)
                        t0 = time.monotonic()
                        if name == "ours":
                            c.stop()
                            c.proc.wait(120)
                        else:
                            c.stop()
                        returned = time.monotonic() - t0
                        deadline = time.monotonic() + LEFTOVER_WAIT
                        while marked_pids(c.mark) and time.monotonic() < deadline:
                            time.sleep(0.02)
                        left = marked_pids(c.mark)
                        gone = None if left else time.monotonic() - t0
                        kill_pids(left)
                        if slow is not None:
                            slow.join(60)
                finally:
                    c.close()
                    remove(tmp)
                got = result.get("r")
                completed = (
                    None
                    if case == "idle"
                    else bool(got and got[0] == 200 and "slow done" in got[1])
                )
                rows.append(
                    {
                        "contender": "ours" if name == "ours" else "supervisord",
                        "case": case,
                        "rep": rep,
                        "returned_s": returned,
                        "gone_s": gone,
                        "leftovers": len(left),
                        "inflight_completed": completed,
                    }
                )
                log(
                    f"stop {name:11} {case:9} #{rep}: returned in {returned:.2f} s, "
                    + (f"gone in {gone:.2f} s" if gone is not None else f"{len(left)} uWSGI left")
                    + (
                        ""
                        if completed is None
                        else f", in-flight request {'completed' if completed else 'FAILED'}"
                    )
                )
    return rows
