"""The machine's half that verifies new code: health checks, swaps, bakes,
rollbacks and liveness. A mixin of `Machine` (machine.py), split out to keep
each file one read: every decision here is still the machine's, on its
state, and pure (no sockets, no processes; `now` passed in)."""

from __future__ import annotations

from typing import Callable, Optional

from supervisor.lifecycle.effects import Controller, ReloadRequest
from supervisor.lifecycle.health import BAKE_PROBE, CURRENT, NEXT, HealthChecks, Outcome
from supervisor.lifecycle.samples import Stats
from supervisor.lifecycle.states import State
from supervisor.spec.model import ReloadMode, Spec


class VerifiedCode:
    # The machine's state this half reads and changes (set in Machine.__init__).
    state: State
    ctl: Controller
    log: Callable[[str], None]
    reload: Optional[ReloadRequest]
    deadline: Optional[float]
    last_stats: Optional[Stats]
    last_stats_ok: Optional[float]
    last_reload: Optional[tuple[float, str]]
    running_since: Optional[float]
    swap_failed: Optional[str]
    health: HealthChecks
    reload_unhealthy: Optional[str]
    next_last_stats: Optional[Stats]
    released: Optional[frozenset[int]]
    release_sent: bool
    bake_until: Optional[float]
    bake_pids: frozenset[int]
    rollbacks: int
    rolled_back: Optional[str]
    liveness_failures: int
    hung: tuple[tuple[int, int], ...]
    hang_swap_refused: bool  # the last swap for a hung app found no new master that passed

    @property
    def spec(self) -> Spec:
        raise NotImplementedError

    # The machine's transitions this half uses (defined in Machine).
    def _go(self, now: float, new: State, why: str) -> None:
        raise NotImplementedError

    def _serving(self, now: float, reason: Optional[str]) -> None:
        raise NotImplementedError

    def _run_pending(self, now: float) -> None:
        raise NotImplementedError

    def _started(self, now: float) -> None:
        raise NotImplementedError

    def _reloaded(self, now: float) -> None:
        raise NotImplementedError

    def _event(self, now: float, kind: str, **detail: object) -> None:
        raise NotImplementedError

    def request_reload(self, now: float, mode: ReloadMode, reason: str) -> None:
        raise NotImplementedError

    def _verified(self, now: float, target: str) -> bool:
        return self.health.verified(now, target, self.spec.health)

    def next_stats(self, now: float, stats: Optional[Stats]) -> None:
        """A stats sample of the swap candidate."""
        if self.state is not State.RELOADING or self.reload is None or stats is None:
            return
        if self.reload.mode is not ReloadMode.SWAP or not stats.all_serving:
            return
        self.next_last_stats = stats
        if self.released is None:
            if self._verified(now, NEXT):
                self._promote(now)
            return
        # Released: promote once every worker is a fresh fork that took the
        # shared sockets (the held ones served health checks only).
        if not self.release_sent:
            self.release_sent = self.ctl.release_next()
        elif not any(w.pid in self.released for w in stats.workers):
            self._promote(now)

    def _promote(self, now: float) -> None:
        assert self.reload is not None
        self.released = None
        self.hang_swap_refused = False
        health = self.spec.health
        bake = health.enabled and health.bake > 0
        self.ctl.promote_next(now, bake)
        self.rolled_back = self.reload_unhealthy = None
        if bake:
            self.bake_until = now + health.bake
            new = self.next_last_stats
            self.bake_pids = frozenset(w.pid for w in new.workers) if new else frozenset()
            self.health.retry(now, CURRENT, BAKE_PROBE)
        self.last_stats = self.next_last_stats
        self.last_stats_ok = now
        self.swap_failed = None
        checked = " and passed the health check" if self.spec.health.enabled else ""
        # RELOADING -> RUNNING
        self._go(now, State.RUNNING, f"swap done: the new master serves{checked}")
        self._serving(now, reason=self.reload.reason)

    def _liveness(self, now: float, ok: bool, detail: str) -> None:
        """A check of the serving master: enough failures with every worker busy
        mean a hung app, replaced through a swap (the stuck workers' stacks go
        to the log first: `hung`)."""
        self.health.probing = False
        self._check_later(now)
        if ok:
            self.liveness_failures = 0
            self.health.failure = None
            return
        self.liveness_failures += 1
        self.health.failure = detail
        limit = self.spec.health.failures
        self.log(f"health check failed ({self.liveness_failures} of {limit} in a row): {detail}")
        workers = self.last_stats.workers if self.last_stats else ()
        busy = [w for w in workers if w.status == "busy"]
        if self.liveness_failures < limit or not busy or len(busy) < len(workers):
            return  # answering, or not yet enough: a new master would not help
        self.liveness_failures = 0
        self.hung = tuple((w.id, w.pid) for w in busy)
        stuck = ", ".join(f"{w.id} (pid {w.pid})" for w in busy)
        self.log(f"every worker is busy and the app fails its health check: hung; stuck: {stuck}")
        # A swap keeps serving what it can; if the last one for a hang was
        # refused (a new master could not pass either), a restart is left.
        mode = ReloadMode.RESTART if self.hang_swap_refused else ReloadMode.SWAP
        self.request_reload(now, mode, f"hung: {detail}")

    def _end_bake(self, now: float) -> None:
        self.bake_until = None
        self.health.reset()
        self.ctl.end_bake(now)

    def _roll_back(self, now: float, why: str) -> bool:
        """Back to the paused master; False (logged) if it is gone."""
        self.bake_until = None
        self.health.reset()
        if not self.ctl.roll_back(now):
            self.log(f"{why}; no paused master to roll back to")
            return False
        self.rollbacks += 1
        self.rolled_back = f"rolled back: {why}"
        self._event(now, "rollback", why=why)
        self.log(f"{self.rolled_back}; the previous code serves again")
        self.last_stats = None
        self.last_reload = (now, self.rolled_back)
        self.running_since = now
        self._check_later(now)
        return True

    def _release(self, now: float) -> None:
        """The candidate passed: let its workers take the site's traffic."""
        last = self.next_last_stats
        self.released = frozenset(w.pid for w in last.workers) if last else frozenset()
        self.release_sent = self.ctl.release_next()
        self.log("the new master passed its health check; its workers now take traffic")

    def probe_due(self, now: float) -> Optional[str]:
        """The master (CURRENT or NEXT) the loop should health-check now, if any;
        the loop reports back through `health_result`."""
        return self.health.due(now)

    def health_result(self, now: float, target: str, ok: bool, detail: str) -> None:
        """A health check of master `target` ended: `detail` says what it got."""
        if target == CURRENT and self.state is State.RUNNING and self.bake_until is not None:
            if ok:
                self.health.retry(now, CURRENT, BAKE_PROBE)
            else:
                self._roll_back(now, f"health check failed: {detail}")
            return
        if target == CURRENT and self.state is State.RUNNING:
            self._liveness(now, ok, detail)
            return
        swapping = self.reload is not None and self.reload.mode is ReloadMode.SWAP
        if target == NEXT and (self.state is not State.RELOADING or not swapping):
            self.health.probing = False
            return  # the swap ended meanwhile
        outcome = self.health.outcome(now, target, ok, detail, self.spec.health)
        if target == NEXT:
            if outcome is Outcome.FAILED:
                self._swap_failed(now, f"health check failed: {detail}")
            elif outcome is Outcome.PASSED:
                self._release(now)
        elif self.state is State.STARTING:
            if outcome is Outcome.PASSED:
                self._started(now)
            elif outcome is Outcome.FAILED:
                self.log(f"health check failed while starting: {detail}")
                self.health.retry(now, CURRENT)
        elif self.state is State.RELOADING and self.reload is not None:
            if outcome is Outcome.PASSED:
                self._reloaded(now)
            elif outcome is Outcome.FAILED:
                # The old code is gone (graceful, chain): say so, never pretend.
                mode = self.reload.mode.value
                self.reload_unhealthy = (
                    f"{mode} reload applied, but the new code fails its health check:"
                    f" {detail} ({mode} reloads cannot roll back; watch.reload: swap can)"
                )
                self.log(self.reload_unhealthy)
                self._go(now, State.RUNNING, f"{mode} reload done, health check failing")
                self._serving(now, reason=self.reload.reason)

    def next_exited(self, now: float, how: str, error: Optional[str]) -> None:
        """The swap candidate exited before serving: keep the old master."""
        if self.state is not State.RELOADING or self.reload is None:
            return
        self._swap_failed(now, f"the new master exited ({how})" + (f": {error}" if error else ""))

    def _swap_failed(self, now: float, why: str) -> None:
        self.hang_swap_refused = self.reload is not None and self.reload.reason.startswith("hung:")
        self.health.reset()
        self.released = None
        self.ctl.abort_next()
        self.swap_failed = f"swap refused: {why}"
        self.log(f"{self.swap_failed}; the old master keeps serving")
        self.deadline = None
        self.reload = None
        # RELOADING -> RUNNING
        self._go(now, State.RUNNING, "swap abandoned")
        self._check_later(now)  # the old master is watched as before
        self._run_pending(now)

    def _check_later(self, now: float) -> None:
        """While running: the next liveness check, health.interval from now."""
        if self.spec.health.enabled:
            self.health.retry(now, CURRENT, self.spec.health.interval)
