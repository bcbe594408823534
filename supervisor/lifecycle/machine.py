"""The state machine for one supervised uWSGI master.

Pure logic: every event method takes `now` (monotonic seconds), acts on
processes only through the injected Controller and announces milestones in
`announcements`, so tests drive it with a fake controller and a number for a
clock. The loop feeds it events: start, stats samples, child exits, reload
and stop requests, and ticks when `next_deadline()` passes.
"""

from __future__ import annotations

import random
import signal
from typing import Callable, Optional

from supervisor.exitcodes import Exit
from supervisor.lifecycle.backoff import restart_delay
from supervisor.lifecycle.effects import Announcement, Controller, Event, ReloadRequest
from supervisor.lifecycle.health import CURRENT, HealthChecks
from supervisor.lifecycle.samples import Stats
from supervisor.lifecycle.states import State, StopIntent, check_transition
from supervisor.lifecycle.verified import VerifiedCode
from supervisor.spec.model import LiveSpec, ReloadMode, Spec

# How long after SIGINT a master that still has not exited gets SIGKILL.
KILL_AFTER = 5.0
# Retry a FIFO write that found no reader (master between execs) this often.
FIFO_RETRY = 0.05
# A stop ('pq') and a graceful reload ('pr') pause uWSGI this long first: see docs/architecture.md.
PAUSE_SETTLE = 0.5

FIFO_FOR_MODE = {ReloadMode.GRACEFUL: "pr", ReloadMode.CHAIN: "c"}


class Machine(VerifiedCode):
    def __init__(
        self,
        live: LiveSpec,
        ctl: Controller,
        log: Callable[[str], None],
        rand: Callable[[], float] = random.random,
    ) -> None:
        self.live = live
        self.ctl = ctl
        self.log = log
        self.rand = rand
        self.state = State.STOPPED
        self.deadline: Optional[float] = None
        self.crashes = 0  # consecutive crashes, reset after restart.reset_after healthy
        self.running_since: Optional[float] = None
        self.generation = 0  # code loads that reached every worker
        self.last_reload: Optional[tuple[float, str]] = None  # (monotonic time, reason)
        self.last_exit: Optional[str] = None
        self.last_stats: Optional[Stats] = None
        self.last_stats_ok: Optional[float] = None
        self.next_last_stats: Optional[Stats] = None  # the swap candidate's
        self.released: Optional[frozenset[int]] = None  # its held workers, once it passed
        # After a swap: until when the old master stays paused, for a rollback,
        # and the new master's workers then (one that is respawned died).
        self.bake_until: Optional[float] = None
        self.bake_pids: frozenset[int] = frozenset()
        self.rollbacks = 0
        self.liveness_failures = 0  # failed checks in a row of the serving master
        self.hung: tuple[tuple[int, int], ...] = ()  # (worker id, pid) to dump, taken by the loop
        self.hang_swap_refused = False
        self.rolled_back: Optional[str] = None  # why the last rollback happened
        self.release_sent = False
        self.reload: Optional[ReloadRequest] = None  # the one under way
        self.pending: Optional[ReloadRequest] = None  # arrived while busy: exactly one more
        self.old_pids: frozenset[int] = frozenset()
        self.fifo_due: Optional[str] = None  # a FIFO command still to be written
        self.fifo_retry_at = 0.0
        self.after_pause: Optional[tuple[float, str]] = None  # (when, 'q' or 'r') after a 'p'
        self.stop_intent = StopIntent.EXIT
        self.sigint_sent = False
        self.swap_failed: Optional[str] = None  # why the last swap kept the old master
        self.health = HealthChecks()  # run by the loop: see probe_due, health_result
        self.reload_unhealthy: Optional[str] = None  # a graceful/chain reload that fails it
        self.announcements: list[Announcement] = []  # taken by the publisher
        self.events: list[Event] = []  # taken by the loop: the history and the metrics
        self.exit_code: Optional[int] = None  # set when the supervisor should exit

    @property
    def spec(self) -> Spec:
        return self.live.spec

    # -- transitions -------------------------------------------------------

    def _go(self, now: float, new: State, why: str) -> None:
        """The one way the state changes: checked, logged, announced."""
        old = self.state
        check_transition(old, new)
        self.log(f"{old.value} -> {new.value} ({why})")
        self.state = new
        if new is State.RUNNING:
            self.announcements.append(Announcement.READY)
        elif new is State.RELOADING:
            self.announcements.append(Announcement.RELOADING)
        elif new is State.STOPPING:
            # A restart is a reload from systemd's point of view.
            restart = self.stop_intent is StopIntent.RESTART
            self.announcements.append(
                Announcement.RELOADING if restart else Announcement.STOPPING
            )
        elif new is State.STOPPED and old is State.BACKOFF:  # no STOPPING came first
            self.announcements.append(Announcement.STOPPING)

    def _event(self, now: float, kind: str, **detail: object) -> None:
        self.events.append(Event(kind, now, tuple(detail.items())))

    def _spawn(self, now: float, why: str) -> None:
        self._event(now, "start", why=why)
        self.ctl.spawn(now)
        self.last_stats = None
        self.deadline = now + self.spec.start_timeout
        self.health.reset()

    def _exit(self, code: int) -> None:
        self.exit_code = code

    # -- events --------------------------------------------------------------

    def start(self, now: float) -> None:
        # STOPPED -> STARTING
        self._go(now, State.STARTING, "start")
        self._spawn(now, "start")

    def adopt(self, now: float, pid: int) -> None:
        """Serve with a master a previous supervisor left: it is READY as soon
        as its stats show every worker serving, as after a start."""
        # STOPPED -> STARTING
        self._go(now, State.STARTING, f"adopting uWSGI pid {pid}")
        self._event(now, "start", why=f"adopted uWSGI pid {pid}, left serving by the last run")
        self.last_stats = None
        self.deadline = now + self.spec.start_timeout

    def stats(self, now: float, stats: Optional[Stats]) -> None:
        """A stats socket sample (None: uWSGI did not answer)."""
        if stats is None:
            return
        self.last_stats = stats
        self.last_stats_ok = now
        if self.state is State.STARTING and stats.all_serving:
            if self._verified(now, CURRENT):
                self._started(now)
        elif self.state is State.RELOADING and self.reload is not None:
            fresh = [w for w in stats.workers if w.pid not in self.old_pids]
            in_place = self.reload.mode is not ReloadMode.SWAP and self.after_pause is None
            done = in_place and stats.all_serving and len(fresh) == len(stats.workers)
            if done and self._verified(now, CURRENT):
                self._reloaded(now)
        if self.state is State.RUNNING and self.bake_until is not None:
            respawned = sorted(w.pid for w in stats.workers if w.pid not in self.bake_pids)
            if respawned:
                pids = " ".join(map(str, respawned))
                self._roll_back(now, f"a worker of the new master died (respawned as {pids})")
        healthy_since = self.running_since if self.state is State.RUNNING else None
        if healthy_since is not None and now - healthy_since >= self.spec.restart.reset_after:
            self.crashes = 0

    def _started(self, now: float) -> None:
        workers = len(self.last_stats.workers) if self.last_stats else 0
        checked = ", health check passed" if self.spec.health.enabled else ""
        # STARTING -> RUNNING
        self._go(now, State.RUNNING, f"{workers} workers serving{checked}")
        self._serving(now, reason=None)

    def _reloaded(self, now: float) -> None:
        assert self.reload is not None
        self.reload_unhealthy = self.rolled_back = None
        # RELOADING -> RUNNING
        self._go(now, State.RUNNING, f"{self.reload.mode.value} reload done")
        self._serving(now, reason=self.reload.reason)

    def _serving(self, now: float, reason: Optional[str]) -> None:
        self.deadline = None
        self.generation += 1
        self.running_since = now
        if reason is not None:
            self.last_reload = (now, reason)
        self.reload = None
        self.liveness_failures = 0
        if self.bake_until is None:
            self._check_later(now)
        self._run_pending(now)

    def _run_pending(self, now: float) -> None:
        if self.pending is not None:
            request, self.pending = self.pending, None
            self.request_reload(now, request.mode, request.reason)

    def child_exited(self, now: float, how: str) -> None:
        """The uWSGI master exited; `how` says how ("exit status 22", "killed by SIGKILL")."""
        self.ctl.reap_leftovers()
        self.last_exit = how
        self.fifo_due = self.after_pause = None
        if self.state is State.STOPPING:
            if self.stop_intent is StopIntent.RESTART:
                # STOPPING -> STARTING
                self._go(now, State.STARTING, f"restart: uWSGI stopped ({how})")
                self._spawn(now, "restart")
            else:
                self.deadline = None
                # STOPPING -> STOPPED
                self._go(now, State.STOPPED, f"uWSGI stopped ({how})")
                self._event(now, "stop", how=how)
                self._exit(Exit.OK)
            return
        if self.bake_until is not None and self._roll_back(now, f"the new master {how}"):
            return
        if self.running_since is not None and now - self.running_since >= (
            self.spec.restart.reset_after
        ):
            self.crashes = 0
        self.crashes += 1
        self.running_since = None
        # The restart loads the newest code and command line anyway: a reload
        # queued before the crash would only reload it once more.
        self.reload = None
        self.pending = None
        limit = self.spec.restart.max_attempts
        if limit is not None and self.crashes > limit:
            self.deadline = None
            self._go(now, State.FATAL, f"uWSGI {how}; gave up after {limit} restarts")
            self._event(now, "crash", how=how, crashes=self.crashes, gave_up=True)
            self._exit(Exit.UNAVAILABLE)  # systemd's Restart= policy takes it from here
            return
        delay = restart_delay(self.crashes, self.spec.restart.backoff, self.rand)
        self.deadline = now + delay
        self._event(now, "crash", how=how, crashes=self.crashes, restart_in=round(delay, 3))
        # STARTING/RUNNING/RELOADING -> BACKOFF
        self._go(now, State.BACKOFF, f"uWSGI {how}; crash {self.crashes}, restart in {delay:.2f}s")

    def request_reload(self, now: float, mode: ReloadMode, reason: str) -> None:
        """Load new code (graceful, chain, swap) or restart uWSGI (restart)."""
        request = ReloadRequest(mode, reason)
        if self.state is State.RUNNING and self.bake_until is not None:
            self._end_bake(now)  # newer code supersedes the code kept for a rollback
        if self.state is State.RUNNING:
            self._event(now, "reload", mode=mode.value, trigger=reason)
            if mode is ReloadMode.RESTART:
                self._stop(now, StopIntent.RESTART, why=f"restart: {reason}")
                return
            self.reload = request
            self.health.reset()
            self.released = None
            self.old_pids = frozenset(
                w.pid for w in (self.last_stats.workers if self.last_stats else ())
            )
            # RUNNING -> RELOADING
            self._go(now, State.RELOADING, f"{mode.value} reload: {reason}")
            if mode is ReloadMode.SWAP:
                self.ctl.spawn_next(now)
            else:
                self._send(now, FIFO_FOR_MODE[mode])
            self.deadline = now + self.spec.reload_timeout
        elif self.state is State.BACKOFF:
            # New code may be the fix: try it now rather than after the backoff.
            # BACKOFF -> STARTING
            self._go(now, State.STARTING, f"{reason} during backoff")
            self._spawn(now, f"{reason} during backoff")
        elif self.state in (State.STARTING, State.RELOADING):
            if self.pending is not None and self.pending.mode is ReloadMode.RESTART:
                return
            self.pending = request  # coalesced: exactly one more reload afterwards
            self.log(f"{reason}: queued until the current {self.state.value} completes")
        else:
            self.log(f"{reason}: ignored while {self.state.value}")

    def request_stop(self, now: float) -> None:
        if self.state in (State.STARTING, State.RUNNING, State.RELOADING):
            self._stop(now, StopIntent.EXIT, why="stop requested")
        elif self.state is State.STOPPING:
            if self.stop_intent is StopIntent.RESTART:
                # The restart under way becomes the stop: systemd must hear of it.
                self.log("stop requested during a restart: stopping instead")
                self.announcements.append(Announcement.STOPPING)
            self.stop_intent = StopIntent.EXIT
            self.pending = None
        elif self.state is State.BACKOFF:
            self.deadline = None
            # BACKOFF -> STOPPED
            self._go(now, State.STOPPED, "stop requested during backoff")
            self._event(now, "stop", how="uWSGI was not running (backoff)")
            self._exit(Exit.OK)
        elif self.state is State.STOPPED:
            self._exit(Exit.OK)

    def _stop(self, now: float, intent: StopIntent, why: str) -> None:
        if self.bake_until is not None:
            self._end_bake(now)
        self.ctl.abort_next()
        self.stop_intent = intent
        self.reload = None
        if intent is StopIntent.EXIT:
            self.pending = None
        self.sigint_sent = False
        # STARTING/RUNNING/RELOADING -> STOPPING
        self._go(now, State.STOPPING, why)
        self._send(now, "pq")  # stop taking connections first: see PAUSE_SETTLE
        self.deadline = now + self.spec.stop_timeout

    def _send(self, now: float, commands: str) -> None:
        """`commands[0]` to the FIFO now; `commands[1]` once its pause settled."""
        self.fifo_due = commands[0]
        self.after_pause = (now + PAUSE_SETTLE, commands[1]) if commands[1:] else None
        self._write_fifo(now)

    def _write_fifo(self, now: float) -> None:
        if self.fifo_due is None:
            return
        if self.ctl.send_fifo(self.fifo_due):
            self.fifo_due = None
        else:
            self.fifo_retry_at = now + FIFO_RETRY

    def tick(self, now: float) -> None:
        """Act on deadlines that have passed."""
        if self.after_pause is not None and now >= self.after_pause[0]:
            self.fifo_due = self.after_pause[1]  # in place of a 'p' never delivered, too
            self.after_pause = None
            self._write_fifo(now)
        elif self.fifo_due is not None and now >= self.fifo_retry_at:
            self._write_fifo(now)
        if self.bake_until is not None and now >= self.bake_until and not self.health.probing:
            self.log("the new master passed its bake: the paused one quits")
            self._end_bake(now)
            self._check_later(now)
        if self.deadline is None or now < self.deadline:
            return
        if self.state is State.BACKOFF:
            # BACKOFF -> STARTING
            self._go(now, State.STARTING, f"restart after crash {self.crashes}")
            self._spawn(now, f"restart after crash {self.crashes}")
        elif self.state is State.STARTING:
            serving = self.last_stats.serving_workers if self.last_stats else 0
            total = self.spec.uwsgi.processes
            self.log(
                f"start timed out after {self.spec.start_timeout:g}s"
                f" ({serving}/{total} workers serving); killing uWSGI"
            )
            self.ctl.kill_instance()
            self.deadline = now + KILL_AFTER  # child_exited follows
        elif self.state is State.RELOADING and self.reload is not None:
            if self.reload.mode is ReloadMode.SWAP:
                self._swap_failed(
                    now, f"the new master did not serve within {self.spec.reload_timeout:g}s"
                )
            else:
                self.log(
                    f"{self.reload.mode.value} reload did not complete within"
                    f" {self.spec.reload_timeout:g}s; falling back to a full restart"
                )
                self._stop(now, StopIntent.RESTART, why="reload deadline passed")
        elif self.state is State.STOPPING:
            self._escalate_stop(now)

    def _escalate_stop(self, now: float) -> None:
        """`q` was not enough: SIGINT, then SIGKILL, each after its timeout."""
        if not self.sigint_sent:
            self.log(f"uWSGI still up {self.spec.stop_timeout:g}s into the stop; sending SIGINT")
            self.fifo_due = self.after_pause = None
            self.ctl.signal_master(signal.SIGINT)
            self.sigint_sent = True
        else:
            self.log("uWSGI ignored SIGINT; sending SIGKILL")
            self.ctl.kill_instance()
        self.deadline = now + KILL_AFTER

    def next_deadline(self) -> Optional[float]:
        found = [self.deadline, self.bake_until, self.after_pause and self.after_pause[0]]
        if self.fifo_due is not None:
            found.append(self.fifo_retry_at)
        found.append(self.health.deadline())
        return min((d for d in found if d is not None), default=None)

    def watchdog_ok(self, now: float, stale_after: float) -> bool:
        """True while it is honest to tell systemd we are alive.

        With uWSGI up, that means its master answered the stats socket within
        `stale_after` seconds: a hung master must get the service restarted.
        """
        if self.state in (State.RUNNING, State.RELOADING):
            return self.last_stats_ok is not None and now - self.last_stats_ok <= stale_after
        return self.state is not State.FATAL
