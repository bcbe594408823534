"""What the supervisor shows people: the STATUS line and the state file.

`Snapshot` is everything a status needs, taken from the machine and the
controller at one moment; `status_line` and `state_doc` only read it. The
state file has one typed schema (`StateDoc`), written by the publisher and
read by the CLI.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, TypedDict

from supervisor.lifecycle.samples import Stats
from supervisor.lifecycle.states import State
from supervisor.uwsgi.private import give_to_dir_owner, read_private


class _VerdictTimes(TypedDict, total=False):
    # applied | applied, health check failing | refused by import check |
    # refused by health check | refused: quarantined | refused | rolled back |
    # timed out | failed | ignored
    kind: str
    asked_at: float  # wall-clock time (time.time()) the reload was asked for
    decided_at: float


class ReloadVerdict(_VerdictTimes):
    """The outcome of the last reload asked for by command or signal (`reload --wait`)."""

    seq: int  # counts requests; `reload` waits for a larger one than it saw
    ok: bool
    message: str


class LastReload(TypedDict):
    at: float  # wall-clock time (time.time())
    reason: str


class SocketDoc(TypedDict):
    """One listening socket, as `status` shows it."""

    role: str  # "app" or "http"
    address: str  # a unix path or host:port
    held_by: str  # "supervisor", or "systemd" (a socket unit)
    backlog: int  # the queue's limit the kernel reports (else the one asked for)
    queued: Optional[int]  # connections waiting for a worker now (None: unknown)


class StateDoc(TypedDict):
    """The state file (state.json in the runtime dir)."""

    name: str
    supervisor_pid: int
    state: str  # a State value
    status: str  # the STATUS line
    uwsgi_pid: Optional[int]
    watching: Optional[str]  # "inotify", "polling", or None when not watching
    generation: int
    crashes: int
    next_try_in: Optional[float]  # seconds, in backoff
    last_exit: Optional[str]
    last_error: Optional[str]  # while not running: why uWSGI failed
    last_reload: Optional[LastReload]
    reload_refused: Optional[str]
    reload_done: ReloadVerdict
    uwsgi_tail: list[str]  # uWSGI's last lines while not running
    sockets: list[SocketDoc]


@dataclass(frozen=True)
class Snapshot:
    """The supervisor at one moment, as status lines and the state file see it."""

    name: str
    state: State
    processes: int  # workers the spec asks for
    generation: int
    crashes: int
    deadline: Optional[float]  # monotonic; in backoff, the next try
    stats: Optional[Stats]  # the serving master's last sample
    reload_mode: Optional[str]  # the reload under way
    reload_reason: Optional[str]
    old_pids: frozenset[int]  # workers from before the reload under way
    last_reload: Optional[tuple[float, str]]  # (wall time, reason)
    last_exit: Optional[str]
    uwsgi_pid: Optional[int]
    watching: Optional[str]
    error: Optional[str]  # why uWSGI last failed
    tail: tuple[str, ...]  # uWSGI's last lines
    refused: Optional[str]  # why the last reload was refused
    verdict: ReloadVerdict
    sockets: tuple[SocketDoc, ...] = ()


def ago(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.0f} s ago"
    if seconds < 3600:
        return f"{seconds / 60:.0f} min ago"
    if seconds < 86400:
        return f"{seconds / 3600:.1f} h ago"
    return f"{seconds / 86400:.1f} days ago"


def status_line(s: Snapshot, now: float, wall: float) -> str:
    """One line a person reads in `systemctl status` (sent as STATUS=)."""
    stats = s.stats
    total = s.processes
    serving = stats.serving_workers if stats else 0
    if s.state is State.RUNNING:
        # No request count: a line that changes with every request would be
        # resent (and the state file rewritten) on every look at an idle app.
        # `status` and the metrics have the counts.
        line = f"serving: {serving}/{total} workers, generation {s.generation}"
        if s.last_reload is not None:
            at, reason = s.last_reload
            line += f", last reload {ago(max(0.0, wall - at))} ({reason})"
    elif s.state is State.STARTING:
        line = f"starting: {serving}/{total} workers serving"
    elif s.state is State.RELOADING and s.reload_mode is not None:
        fresh = (
            sum(1 for w in stats.workers if w.pid not in s.old_pids and w.serving) if stats else 0
        )
        line = (
            f"reloading ({s.reload_mode}): {fresh}/{total} workers on new code ({s.reload_reason})"
        )
    elif s.state is State.BACKOFF:
        wait = max(0.0, (s.deadline or now) - now)
        line = f"backoff: crash {s.crashes}, retrying in {wait:.1f} s"
        if s.error:
            line += f": {s.error}"
    elif s.state is State.STOPPING:
        line = "stopping: waiting for uWSGI to finish in-flight requests"
    elif s.state is State.FATAL:
        line = f"gave up after {s.crashes - 1} restarts"
        if s.error:
            line += f": {s.error}"
    else:
        line = s.state.value
    if s.refused and s.state in (State.STARTING, State.RUNNING, State.RELOADING):
        line += f"; {s.refused}"
    return line


def state_doc(s: Snapshot, status: str, now: float, pid: int) -> StateDoc:
    """The state file's document for a snapshot."""
    running = s.state is State.RUNNING
    backoff = s.state is State.BACKOFF and s.deadline is not None
    return StateDoc(
        name=s.name,
        supervisor_pid=pid,
        state=s.state.value,
        status=status,
        uwsgi_pid=s.uwsgi_pid,
        watching=s.watching,
        generation=s.generation,
        crashes=s.crashes,
        next_try_in=max(0.0, (s.deadline or now) - now) if backoff else None,
        last_exit=s.last_exit,
        last_error=None if running else s.error,
        last_reload=LastReload(at=s.last_reload[0], reason=s.last_reload[1])
        if s.last_reload
        else None,
        reload_refused=s.refused,
        reload_done=s.verdict,
        uwsgi_tail=[] if running else list(s.tail[-10:]),
        sockets=list(s.sockets),
    )


def write_state(path: Path, doc: StateDoc) -> None:
    """Replace the state file atomically (readers never see half a document).

    mkstemp makes the temporary 0600 with O_EXCL (never through a symlink), and
    the rename replaces whatever is at `path`, a symlink included, without
    following it. 0600 is enough for its readers: `status` is for root and the
    service user, as are the stats socket and the FIFO it also needs.
    """
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".state-")
    try:
        give_to_dir_owner(fd, path.parent)
        with os.fdopen(fd, "w") as f:
            json.dump(doc, f, indent=1, sort_keys=True)
        os.replace(tmp, path)
    except BaseException:
        # A full disk: leave no half-written temporary file behind, every time.
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def read_state(path: Path) -> Optional[StateDoc]:
    """The state file's document, or None if there is none (or it is unreadable)."""
    try:
        doc = json.loads(read_private(path))
    except (OSError, ValueError):
        return None
    if not isinstance(doc, dict) or not isinstance(doc.get("reload_done"), dict):
        return None
    return doc  # type: ignore[return-value]  # written by state_doc
