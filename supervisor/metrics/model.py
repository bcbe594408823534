"""What the metrics show, kept by the loop: its picture of one turn (`View`)
and the counts of what happened (`Counters`). No Prometheus code here: the
loop keeps these whether or not /metrics is served, and prometheus_client
is imported only when it is (collect.py, server.py)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Optional

from supervisor.lifecycle.states import State

# Refusals by what refused, from a verdict's kind.
CHECKS = {
    "refused by import check": "import",
    "refused by health check": "health",
    "refused: quarantined": "quarantine",
    "timed out": "timeout",
    "rolled back": "bake",
}


@dataclass(frozen=True)
class View:
    """What a scrape shows: the loop's picture at one turn."""

    state: State
    generation: int
    crashes: int
    backoff_delay: float  # seconds left before the next restart (0 unless in backoff)
    watcher: str  # inotify, polling, or off
    stats: Optional[Mapping[str, Any]]  # the serving master's last stats document
    stats_age: Optional[float]  # seconds since it was read
    sockets: tuple[Mapping[str, Any], ...] = ()  # status.SocketDoc: role, address, ...


@dataclass
class Counters:
    """What happened since the supervisor started: counted from the event
    history's records (history.History.listeners), in the loop's thread.
    Each dict is replaced, never changed in place, so a scrape on the
    server's thread iterates a stable one."""

    reloads: dict[tuple[str, str], int] = field(default_factory=dict)  # (mode, verdict)
    restarts: dict[str, int] = field(default_factory=dict)  # cause
    refusals: dict[str, int] = field(default_factory=dict)  # check
    rollbacks: int = 0
    last_reload_duration: Optional[float] = None

    def count(self, doc: Mapping[str, Any]) -> None:
        kind = doc.get("event")
        if kind == "crash":
            self.restarts = _plus(self.restarts, str(doc.get("how")))
        elif kind == "reload":
            mode, verdict = str(doc.get("mode")), str(doc.get("verdict"))
            self.reloads = _plus(self.reloads, (mode, verdict))
            self.last_reload_duration = float(doc.get("duration") or 0.0)
            if mode == "restart" and str(doc.get("trigger", "")).startswith("hung"):
                self.restarts = _plus(self.restarts, "hung")
            if not doc.get("ok") and verdict in CHECKS and verdict != "rolled back":
                self.refusals = _plus(self.refusals, CHECKS[verdict])
        elif kind == "refused":
            self.refusals = _plus(self.refusals, CHECKS.get(str(doc.get("verdict")), "other"))
        elif kind == "rollback":
            self.rollbacks += 1


def _plus(counts: dict[Any, int], key: Any) -> dict[Any, int]:
    return {**counts, key: counts.get(key, 0) + 1}
