"""What the machine asks of the outside world, and what it announces.

The machine acts on processes only through a `Controller` (the real one is
`supervisor.uwsgi.UwsgiController`; tests pass a fake) and tells the rest of
the supervisor about its progress only through `Announcement`s, which one
publisher turns into sd_notify messages. Neither needs a socket here.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Protocol

from supervisor.spec.model import ReloadMode


class Controller(Protocol):
    """The processes the machine controls: one serving master, maybe a swap candidate."""

    def spawn(self, now: float) -> None: ...  # start a fresh uWSGI; leftovers already cleared
    def send_fifo(self, command: str) -> bool: ...  # False: no reader yet, retry
    def signal_master(self, sig: int) -> None: ...
    def kill_instance(self) -> None: ...  # SIGKILL the master and its whole process group
    def reap_leftovers(self) -> None: ...  # master gone: end every process of that instance
    def spawn_next(self, now: float) -> None: ...  # swap: start a second master
    def release_next(self) -> bool: ...  # swap: it passed; its workers take traffic
    def promote_next(self, now: float, bake: bool = False) -> None: ...  # old: retire/pause
    def end_bake(self, now: float) -> None: ...  # the paused old master quits
    def roll_back(self, now: float) -> bool: ...  # the paused old master serves again
    def abort_next(self) -> None: ...  # swap: end the candidate; the old master keeps serving


class Announcement(enum.Enum):
    """A milestone systemd must hear of (READY=1, RELOADING=1, STOPPING=1)."""

    READY = "READY"  # every worker serves the current code
    RELOADING = "RELOADING"  # new code (or a new command line) is being loaded
    STOPPING = "STOPPING"  # the service is going down


@dataclass(frozen=True)
class Event:
    """A milestone for the event history and the metrics, as the machine saw it.

    kind: start | crash | reload | rollback | stop. `detail` holds what the
    machine knows (a crash's "how", a reload's mode and trigger); the loop adds
    what only it knows (uWSGI's last lines, the reload's verdict)."""

    kind: str
    at: float  # monotonic
    detail: tuple[tuple[str, object], ...] = ()


@dataclass(frozen=True)
class ReloadRequest:
    mode: ReloadMode
    reason: str
