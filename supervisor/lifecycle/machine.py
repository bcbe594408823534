"""The state machine for one supervised uWSGI master.

Pure logic: every event method takes `now` (monotonic seconds) and acts only
through the injected Controller, so tests drive it with a fake controller and
a number for a clock. The loop feeds it events: start, stats samples, child
exits, reload and stop requests, and ticks when `next_deadline()` passes.
"""

from __future__ import annotations

import random
import signal
from dataclasses import dataclass
from typing import Callable, Optional, Protocol

from supervisor.lifecycle.backoff import restart_delay
from supervisor.lifecycle.states import State, check_transition
from supervisor.spec.model import Spec
from supervisor.uwsgi.control import Stats

# How long after SIGINT a master that still has not exited gets SIGKILL.
KILL_AFTER = 5.0
# Retry a FIFO write that found no reader (master between execs) this often.
FIFO_RETRY = 0.05


class Controller(Protocol):
    """What the machine asks of the outside world."""

    def spawn(self) -> None: ...  # start a fresh uWSGI; leftovers already cleared
    def send_fifo(self, command: str) -> bool: ...  # False: no reader yet, retry
    def signal_master(self, sig: int) -> None: ...
    def kill_instance(self) -> None: ...  # SIGKILL the master and its whole process group
    def reap_leftovers(self) -> None: ...  # master gone: end every process of that instance
    def spawn_next(self) -> None: ...  # swap: start a second master on a fresh socket
    def promote_next(self) -> None: ...  # swap: its socket replaces the live one; old retires
    def abort_next(self) -> None: ...  # swap: end the candidate; the old master keeps serving
    def notify_ready(self) -> None: ...
    def notify_reloading(self) -> None: ...
    def notify_stopping(self) -> None: ...
    def log(self, message: str) -> None: ...
    def wall(self) -> float: ...
    def exit(self, code: int) -> None: ...


@dataclass
class ReloadRequest:
    mode: str  # "graceful" | "chain" | "swap" | "restart"
    reason: str


FIFO_FOR_MODE = {"graceful": "r", "chain": "c"}
EXIT_GAVE_UP = 69  # EX_UNAVAILABLE: systemd's Restart= policy takes it from here


class Machine:
    def __init__(
        self, spec: Spec, ctl: Controller, rand: Callable[[], float] = random.random
    ) -> None:
        self.spec = spec
        self.ctl = ctl
        self.rand = rand
        self.state = State.STOPPED
        self.deadline: Optional[float] = None
        self.crashes = 0  # consecutive crashes, reset after restart.reset_after healthy
        self.running_since: Optional[float] = None
        self.generation = 0  # code loads that reached every worker
        self.last_reload: Optional[tuple[float, str]] = None  # (wall time, reason)
        self.last_exit: Optional[str] = None
        self.last_stats: Optional[Stats] = None
        self.last_stats_ok: Optional[float] = None
        self.reload: Optional[ReloadRequest] = None  # the one under way
        self.pending: Optional[ReloadRequest] = None  # arrived while busy: exactly one more
        self.old_pids: frozenset[int] = frozenset()
        self.fifo_due: Optional[str] = None  # a FIFO command still to be written
        self.fifo_retry_at = 0.0
        self.stop_intent = "exit"  # what STOPPING leads to: "exit" or "restart"
        self.sigint_sent = False
        self.swap_failed: Optional[str] = None  # why the last swap kept the old master

    # -- transitions -------------------------------------------------------

    def _go(self, now: float, new: State, why: str) -> None:
        check_transition(self.state, new)
        self.ctl.log(f"{self.state.value} -> {new.value} ({why})")
        self.state = new

    def _spawn(self, now: float) -> None:
        self.ctl.spawn()
        self.last_stats = None
        self.deadline = now + self.spec.start_timeout

    # -- events --------------------------------------------------------------

    def start(self, now: float) -> None:
        # STOPPED -> STARTING
        self._go(now, State.STARTING, "start")
        self._spawn(now)

    def stats(self, now: float, stats: Optional[Stats]) -> None:
        """A stats socket sample (None: uWSGI did not answer)."""
        if stats is None:
            return
        self.last_stats = stats
        self.last_stats_ok = now
        if self.state is State.STARTING and stats.all_serving:
            # STARTING -> RUNNING
            self._go(now, State.RUNNING, f"{len(stats.workers)} workers serving")
            self._serving(now, reason=None)
        elif self.state is State.RELOADING and self.reload is not None:
            fresh = [w for w in stats.workers if w.pid not in self.old_pids]
            if stats.all_serving and len(fresh) == len(stats.workers):
                # RELOADING -> RUNNING
                self._go(now, State.RUNNING, f"{self.reload.mode} reload done")
                self._serving(now, reason=self.reload.reason)
        healthy_since = self.running_since if self.state is State.RUNNING else None
        if healthy_since is not None and now - healthy_since >= self.spec.restart.reset_after:
            self.crashes = 0

    def next_stats(self, now: float, stats: Optional[Stats]) -> None:
        """A stats sample of the swap candidate."""
        if self.state is not State.RELOADING or self.reload is None or stats is None:
            return
        if self.reload.mode == "swap" and stats.all_serving:
            self.ctl.promote_next()
            self.last_stats = stats
            self.last_stats_ok = now
            self.swap_failed = None
            # RELOADING -> RUNNING
            self._go(now, State.RUNNING, "swap done: the new master serves")
            self._serving(now, reason=self.reload.reason)

    def next_exited(self, now: float, how: str, error: Optional[str]) -> None:
        """The swap candidate exited before serving: keep the old master."""
        if self.state is not State.RELOADING or self.reload is None:
            return
        self._swap_failed(now, f"the new master exited ({how})" + (f": {error}" if error else ""))

    def _swap_failed(self, now: float, why: str) -> None:
        self.ctl.abort_next()
        self.swap_failed = f"swap refused: {why}"
        self.ctl.log(f"{self.swap_failed}; the old master keeps serving")
        # RELOADING -> RUNNING
        self._go(now, State.RUNNING, "swap abandoned")
        self.deadline = None
        self.reload = None
        self.ctl.notify_ready()
        if self.pending is not None:
            request, self.pending = self.pending, None
            self.request_reload(now, request.mode, request.reason)

    def _serving(self, now: float, reason: Optional[str]) -> None:
        self.deadline = None
        self.generation += 1
        self.running_since = now
        if reason is not None:
            self.last_reload = (self.ctl.wall(), reason)
        self.reload = None
        self.ctl.notify_ready()
        if self.pending is not None:
            request, self.pending = self.pending, None
            self.request_reload(now, request.mode, request.reason)

    def child_exited(self, now: float, how: str) -> None:
        """The uWSGI master exited; `how` says how ("exit status 22", "killed by SIGKILL")."""
        self.ctl.reap_leftovers()
        self.last_exit = how
        self.fifo_due = None
        if self.state is State.STOPPING:
            if self.stop_intent == "restart":
                # STOPPING -> STARTING
                self._go(now, State.STARTING, f"restart: uWSGI stopped ({how})")
                self._spawn(now)
            else:
                # STOPPING -> STOPPED
                self._go(now, State.STOPPED, f"uWSGI stopped ({how})")
                self.deadline = None
                self.ctl.exit(0)
            return
        if self.running_since is not None and now - self.running_since >= (
            self.spec.restart.reset_after
        ):
            self.crashes = 0
        self.crashes += 1
        self.running_since = None
        limit = self.spec.restart.max_attempts
        if limit is not None and self.crashes > limit:
            self._go(now, State.FATAL, f"uWSGI {how}; gave up after {limit} restarts")
            self.deadline = None
            self.ctl.exit(EXIT_GAVE_UP)
            return
        delay = restart_delay(self.crashes, self.spec.restart.backoff, self.rand)
        # STARTING/RUNNING/RELOADING -> BACKOFF
        self._go(now, State.BACKOFF, f"uWSGI {how}; crash {self.crashes}, restart in {delay:.2f}s")
        self.deadline = now + delay
        if self.reload is not None and self.pending is None:
            self.pending = None  # the restart loads the newest code anyway
        self.reload = None

    def request_reload(self, now: float, mode: str, reason: str) -> None:
        """Load new code (mode graceful/chain) or restart uWSGI (mode restart)."""
        request = ReloadRequest(mode, reason)
        if self.state is State.RUNNING:
            if mode == "restart":
                self._stop(now, intent="restart", why=f"restart: {reason}")
                return
            # RUNNING -> RELOADING
            self._go(now, State.RELOADING, f"{mode} reload: {reason}")
            self.reload = request
            self.old_pids = frozenset(
                w.pid for w in (self.last_stats.workers if self.last_stats else ())
            )
            self.ctl.notify_reloading()
            if mode == "swap":
                self.ctl.spawn_next()
            else:
                self.fifo_due = FIFO_FOR_MODE[mode]
                self._write_fifo(now)
            self.deadline = now + self.spec.reload_timeout
        elif self.state is State.BACKOFF:
            # New code may be the fix: try it now rather than after the backoff.
            # BACKOFF -> STARTING
            self._go(now, State.STARTING, f"{reason} during backoff")
            self._spawn(now)
        elif self.state in (State.STARTING, State.RELOADING):
            if self.pending is not None and self.pending.mode == "restart":
                return
            self.pending = request  # coalesced: exactly one more reload afterwards
            self.ctl.log(f"{reason}: queued until the current {self.state.value} completes")
        else:
            self.ctl.log(f"{reason}: ignored while {self.state.value}")

    def request_stop(self, now: float) -> None:
        if self.state in (State.STARTING, State.RUNNING, State.RELOADING):
            self._stop(now, intent="exit", why="stop requested")
        elif self.state is State.STOPPING:
            self.stop_intent = "exit"
        elif self.state is State.BACKOFF:
            # BACKOFF -> STOPPED
            self.ctl.notify_stopping()
            self._go(now, State.STOPPED, "stop requested during backoff")
            self.deadline = None
            self.ctl.exit(0)
        elif self.state is State.STOPPED:
            self.ctl.exit(0)

    def _stop(self, now: float, intent: str, why: str) -> None:
        # STARTING/RUNNING/RELOADING -> STOPPING
        self._go(now, State.STOPPING, why)
        self.ctl.abort_next()
        self.stop_intent = intent
        self.reload = None
        if intent == "exit":
            self.pending = None
            self.ctl.notify_stopping()
        self.sigint_sent = False
        self.fifo_due = "q"
        self._write_fifo(now)
        self.deadline = now + self.spec.stop_timeout

    def _write_fifo(self, now: float) -> None:
        if self.fifo_due is None:
            return
        if self.ctl.send_fifo(self.fifo_due):
            self.fifo_due = None
        else:
            self.fifo_retry_at = now + FIFO_RETRY

    def tick(self, now: float) -> None:
        """Act on deadlines that have passed."""
        if self.fifo_due is not None and now >= self.fifo_retry_at:
            self._write_fifo(now)
        if self.deadline is None or now < self.deadline:
            return
        if self.state is State.BACKOFF:
            # BACKOFF -> STARTING
            self._go(now, State.STARTING, f"restart after crash {self.crashes}")
            self._spawn(now)
        elif self.state is State.STARTING:
            serving = self.last_stats.serving_workers if self.last_stats else 0
            total = self.spec.uwsgi.processes
            self.ctl.log(
                f"start timed out after {self.spec.start_timeout:g}s"
                f" ({serving}/{total} workers serving); killing uWSGI"
            )
            self.ctl.kill_instance()
            self.deadline = now + KILL_AFTER  # child_exited follows
        elif (
            self.state is State.RELOADING and self.reload is not None and self.reload.mode == "swap"
        ):
            self._swap_failed(
                now, f"the new master did not serve within {self.spec.reload_timeout:g}s"
            )
        elif self.state is State.RELOADING and self.reload is not None:
            self.ctl.log(
                f"{self.reload.mode} reload did not complete within"
                f" {self.spec.reload_timeout:g}s; falling back to a full restart"
            )
            self._stop(now, intent="restart", why="reload deadline passed")
        elif self.state is State.STOPPING:
            if not self.sigint_sent:
                self.ctl.log(
                    f"uWSGI still running {self.spec.stop_timeout:g}s after 'q'; sending SIGINT"
                )
                self.fifo_due = None
                self.ctl.signal_master(signal.SIGINT)
                self.sigint_sent = True
                self.deadline = now + KILL_AFTER
            else:
                self.ctl.log("uWSGI ignored SIGINT; sending SIGKILL")
                self.ctl.kill_instance()
                self.deadline = now + KILL_AFTER

    def next_deadline(self) -> Optional[float]:
        if self.fifo_due is not None:
            if self.deadline is None:
                return self.fifo_retry_at
            return min(self.deadline, self.fifo_retry_at)
        return self.deadline

    def watchdog_ok(self, now: float, stale_after: float) -> bool:
        """True while it is honest to tell systemd we are alive.

        With uWSGI up, that means its master answered the stats socket within
        `stale_after` seconds: a hung master must get the service restarted.
        """
        if self.state in (State.RUNNING, State.RELOADING):
            return self.last_stats_ok is not None and now - self.last_stats_ok <= stale_after
        return self.state is not State.FATAL
