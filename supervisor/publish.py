"""The one outlet for state changes: sd_notify, the STATUS line and the state file.

The machine announces milestones (READY, RELOADING, STOPPING) as it changes
state; the loop hands them here with a `Snapshot` of the moment, and this
module turns them into what systemd and people see. Nothing else sends
sd_notify messages or writes the state file.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Callable, Optional

from supervisor.lifecycle.effects import Announcement
from supervisor.lifecycle.machine import Machine
from supervisor.lifecycle.states import State
from supervisor.metrics import View
from supervisor.spec import tree_problems
from supervisor.spec.model import Spec
from supervisor.status import (
    ReloadVerdict,
    Snapshot,
    SocketDoc,
    StateDoc,
    state_doc,
    status_line,
    write_state,
)
from supervisor.systemd.notify import Notifier
from supervisor.uwsgi.controller import UwsgiController
from supervisor.uwsgi.listeners import Listeners
from supervisor.uwsgi.queues import queue_length

# At most this often the state file and STATUS follow mere figures (requests);
# a change of state, generation or verdict goes out at once.
REFRESH = 0.2


class Publisher:
    def __init__(
        self,
        notifier: Notifier,
        state_path: Callable[[], Path],
        log_error: Callable[[str], None],
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.notifier = notifier
        self.state_path = state_path
        self.log_error = log_error
        self.wall = wall
        self.last_announced: Optional[Announcement] = None
        self.last_milestone: tuple[object, ...] = ()
        self.last_write = float("-inf")
        self.last_doc: Optional[StateDoc] = None
        self.write_failed = False

    def turn(
        self, announcements: Sequence[Announcement], snap: Snapshot, now: float, force: bool = False
    ) -> None:
        """One loop turn's output: the state file first, then the milestones, so
        whoever is woken by READY (`systemctl start` returning, then `status`)
        reads the state that READY announced, never the one before it."""
        self.publish(snap, now, force=force)
        self.announce(announcements, snap, now)

    def announce(self, announcements: Sequence[Announcement], snap: Snapshot, now: float) -> None:
        """Send each milestone to systemd, with the STATUS line of the moment."""
        for what in announcements:
            if what is Announcement.RELOADING and self.last_announced is what:
                continue  # a restart after a failed reload is the same reload
            self.last_announced = what
            line = status_line(snap, now, self.wall())
            if what is Announcement.READY:
                self.notifier.ready(line)
            elif what is Announcement.RELOADING:
                self.notifier.reloading(line)
            else:
                self.notifier.stopping(line)

    def publish(self, snap: Snapshot, now: float, force: bool = False) -> None:
        """Send STATUS= and rewrite the state file: at once when the state,
        the generation or a reload's outcome changed (READY and the file
        agree), else at most every REFRESH seconds, and never when nothing
        changed (an idle supervisor wakes no one watching the file)."""
        milestone = (snap.state, snap.generation, snap.verdict["seq"], snap.refused)
        if milestone != self.last_milestone:
            self.last_milestone = milestone
            force = True
        if not force and now - self.last_write < REFRESH:
            return
        self.last_write = now
        line = status_line(snap, now, self.wall())
        self.notifier.status(line)
        doc = state_doc(snap, line, now, os.getpid())
        if doc == self.last_doc and not force:
            return
        try:
            write_state(self.state_path(), doc)
            self.last_doc = doc
            self.write_failed = False
        except OSError as exc:
            if not self.write_failed:  # a full disk must not flood the journal
                self.log_error(f"cannot write state file (status shows stale data): {exc}")
            self.write_failed = True


def take_snapshot(
    spec: Spec,
    m: Machine,
    ctl: UwsgiController,
    watching: Optional[str],
    refused: Optional[str],
    verdict: ReloadVerdict,
    now: float,
    sockets: tuple[SocketDoc, ...] = (),
) -> Snapshot:
    """The supervisor as status lines and the state file see it at `now`."""
    wall = time.time()
    return Snapshot(
        name=spec.name,
        state=m.state,
        processes=spec.uwsgi.processes,
        generation=m.generation,
        crashes=m.crashes,
        deadline=m.deadline,
        stats=m.last_stats,
        reload_mode=m.reload.mode.value if m.reload else None,
        reload_reason=m.reload.reason if m.reload else None,
        old_pids=m.old_pids,
        last_reload=(wall - (now - m.last_reload[0]), m.last_reload[1])
        if m.last_reload
        else None,
        last_exit=m.last_exit,
        uwsgi_pid=ctl.current.pid if ctl.current else None,
        watching=watching,
        error=_why_down(spec, m, ctl),
        tail=tuple(ctl.tail()),
        refused=refused or _unhealthy(m) or m.rolled_back or m.swap_failed or m.reload_unhealthy,
        verdict=verdict,
        sockets=sockets,
    )


def _unhealthy(m: Machine) -> Optional[str]:
    """A master that fails its health check now: starting, or serving (liveness)."""
    if m.state in (State.STARTING, State.RUNNING) and m.health.failure:
        return f"health check failing: {m.health.failure}"
    return None


def _why_down(spec: Spec, m: Machine, ctl: UwsgiController) -> Optional[str]:
    """Why uWSGI last failed; in backoff, first what a deploy still owes the tree
    (uWSGI cannot start without it)."""
    if m.state is State.RUNNING:
        return None  # shown only while not running; and not worth a look per turn
    if m.state is State.BACKOFF:
        missing = tree_problems(spec)
        if missing:
            return "waiting for the app tree: " + "; ".join(missing)
    return ctl.last_error()


def socket_docs(listeners: Optional[Listeners]) -> tuple[SocketDoc, ...]:
    """The listening sockets with their queue as the kernel reports it now."""
    if listeners is None:
        return ()
    docs = []
    for listener in listeners.all():
        queue = queue_length(listener.sock)
        docs.append(
            SocketDoc(
                role=listener.role,
                address=listener.address.for_uwsgi(),
                held_by=listener.held_by,
                backlog=queue[1] if queue else listener.backlog,
                queued=queue[0] if queue else None,
            )
        )
    return tuple(docs)


def view_of(snap: Snapshot, stats_ok_at: Optional[float], now: float) -> View:
    """The metrics' picture of the supervisor at `now` (built each turn: only references)."""
    backoff = snap.state is State.BACKOFF and snap.deadline is not None
    return View(
        state=snap.state,
        generation=snap.generation,
        crashes=snap.crashes,
        backoff_delay=max(0.0, (snap.deadline or now) - now) if backoff else 0.0,
        watcher=snap.watching or "off",
        stats=snap.stats.doc if snap.stats is not None else None,
        stats_age=now - stats_ok_at if stats_ok_at is not None else None,
        sockets=snap.sockets,
    )
