"""What the machine observes of a uWSGI master: one stats-socket sample.

The machine's vocabulary, not the socket client's: the state machine decides
on these values and must not import socket code to get them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional


@dataclass(frozen=True)
class Worker:
    id: int
    pid: int
    accepting: bool
    status: str  # idle | busy | cheap | pause | sigN
    requests: int
    exceptions: int
    rss: int
    last_spawn: int
    respawn_count: int
    apps: int  # apps loaded; 0 until the worker imported the app

    @property
    def serving(self) -> bool:
        return self.accepting and self.apps > 0 and self.pid > 0


@dataclass(frozen=True)
class Stats:
    """One reading of the stats socket, reduced to what decisions need."""

    pid: int
    version: str
    listen_queue: int
    workers: tuple[Worker, ...]
    # The whole document, for the metrics (never for decisions).
    doc: Optional[dict[str, Any]] = field(default=None, compare=False, repr=False)

    @property
    def serving_workers(self) -> int:
        return sum(1 for w in self.workers if w.serving)

    @property
    def all_serving(self) -> bool:
        return bool(self.workers) and all(w.serving for w in self.workers)

    @property
    def requests(self) -> int:
        return sum(w.requests for w in self.workers)
