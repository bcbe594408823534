"""The one gate every reload passes: a code push, `reload`, SIGHUP, SIGUSR1/2.

A graceful or chain reload replaces the running code in place, so new code
must prove it imports before uWSGI is told to load it. The gate runs the
import check (`Preflight`) and hands the machine only reloads whose code
passed it. Three rules make that hold on a bad day:

- **The reload loads what was checked.** A change of the tree while the
  check runs makes its result stale: the gate checks again once the tree
  has been quiet for the debounce, whatever the stale result was.
- **A swap needs no check here**: its new master is the check, under
  uWSGI, and replaces the old one only once every worker serves.
- **Nothing is reloaded while uWSGI starts or reloads**: requests wait
  (coalesced into one) until the machine runs again; while uWSGI is down
  (backoff), starting it is the check.

Verdicts for `reload --wait` leave through two callbacks: `forwarded`
(the machine took the reload; the loop settles it when the machine does)
and `refused` (never reached uWSGI, with the reason).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

from supervisor.codepush.fingerprint import tree_fingerprint
from supervisor.codepush.preflight import Preflight, PreflightResult
from supervisor.lifecycle.machine import Machine
from supervisor.lifecycle.states import State, StopIntent
from supervisor.spec import tree_problems
from supervisor.spec.model import LiveSpec, ReloadMode, Spec
from supervisor.uwsgi.command import write_entry

# While the app tree is incomplete (a deploy that removed and is recreating
# it), look again this often; a watched tree also wakes the gate on change.
TREE_POLL = 1.0


@dataclass(frozen=True)
class Wanted:
    """Reloads asked for and not yet handed to the machine, coalesced."""

    mode: ReloadMode
    reason: str
    seqs: tuple[int, ...]  # signal-requested reloads waiting for a verdict (0: none)

    def merge(self, mode: ReloadMode, reason: str, seq: int) -> Wanted:
        # A restart (new uWSGI command line) covers any reload; else the newest mode wins.
        keep = ReloadMode.RESTART if ReloadMode.RESTART in (self.mode, mode) else mode
        return Wanted(keep, reason, self.seqs + ((seq,) if seq else ()))


class Gate:
    def __init__(
        self,
        live: LiveSpec,
        machine: Machine,
        log: Callable[[str], None],
        forwarded: Callable[[tuple[int, ...]], None] = lambda seqs: None,
        # (seqs, why, kind, trigger): trigger is what asked, e.g. "code change: app.py"
        refused: Callable[[tuple[int, ...], str, str, str], None] = lambda *refusal: None,
    ) -> None:
        self.live = live
        self.machine = machine
        self.log = log
        self.on_forwarded = forwarded
        self.on_refused = refused
        self.preflight = Preflight()
        self.wanted: Optional[Wanted] = None
        self.checking: Optional[Wanted] = None  # the request the running check is for
        self.stale = False  # the tree changed after the running check began
        self.quiet_at = 0.0  # no check starts before the tree is quiet
        self.unsettled_since: Optional[float] = None  # first change not yet checked
        self.refused: Optional[str] = None  # why the last reload was refused, for status
        self.waiting: Optional[str] = None  # what of the tree is missing, for status
        # Quarantine: the tree (fingerprint) of the last reload handed on or
        # checked, and a tree that was refused or rolled back, with why.
        self.last_print: Optional[str] = None
        self.quarantined: Optional[tuple[str, str]] = None
        self.failures_seen: tuple[int, Optional[str]] = (0, None)  # the machine's
        self.tree_retry_at: Optional[float] = None

    @property
    def spec(self) -> Spec:
        return self.live.spec

    # -- inputs ---------------------------------------------------------------

    def request(self, now: float, mode: ReloadMode, reason: str, seq: int = 0) -> None:
        """A reload is wanted; it reaches the machine through `tick`."""
        if self.wanted is None:
            self.wanted = Wanted(mode, reason, (seq,) if seq else ())
        else:
            self.wanted = self.wanted.merge(mode, reason, seq)
        self.tick(now)

    def tree_changed(self, now: float) -> None:
        """The watcher saw the tree change: a running check no longer speaks for it."""
        watch = self.spec.watch
        if self.unsettled_since is None:
            self.unsettled_since = now
        # Quiet for the debounce, but a tree that never stops changing is
        # still looked at every max_wait (as the debouncer does).
        self.quiet_at = min(now + watch.debounce, self.unsettled_since + watch.max_wait)
        self.tree_retry_at = None  # look at a missing tree again at once
        if self.preflight.running:
            self.stale = True

    def cancel(self) -> None:
        self.preflight.cancel()

    # -- the loop's side ---------------------------------------------------------

    def deadline(self) -> Optional[float]:
        """When `tick` has something to do, if nothing wakes the loop first.

        A running check ends with SIGCHLD, so only its timeout is a deadline;
        a request that waits for the machine waits for its next state, which
        the loop's stats polling brings.
        """
        if self.preflight.running:
            return self.preflight.deadline
        if self.wanted is None or not self._can_act():
            return None
        if self.tree_retry_at is not None:
            return max(self.tree_retry_at, self.quiet_at)
        return self.quiet_at

    def _can_act(self) -> bool:
        return self.machine.state in (State.RUNNING, State.BACKOFF)

    def _watch_machine(self) -> None:
        """A swap refused or rolled back since the last look: quarantine that tree."""
        m = self.machine
        seen = (m.rollbacks, m.swap_failed)
        if seen != self.failures_seen:
            rolled_back = m.rollbacks > self.failures_seen[0]
            self.failures_seen = seen
            why = m.rolled_back if rolled_back else m.swap_failed
            if why:
                self.quarantine(why)

    def tick(self, now: float) -> None:
        self._watch_machine()
        if self.preflight.running:
            result = self.preflight.poll(now)
            if result is not None:
                self._checked(now, result)
            return
        wanted = self.wanted
        if wanted is None:
            return
        state = self.machine.state
        if state is State.STOPPING and self.machine.stop_intent is StopIntent.RESTART:
            return  # a restart under way: reload after it, onto whatever is there then
        if state in (State.STOPPING, State.STOPPED, State.FATAL):
            self.wanted = None
            why = f"reload ignored: the service is {state.value}"
            self.on_refused(wanted.seqs, why, "ignored", wanted.reason)
            return
        if not self._can_act() or now < self.quiet_at:
            return  # STARTING, RELOADING: one coalesced reload follows
        if self.tree_retry_at is not None and now < self.tree_retry_at:
            return
        missing = tree_problems(self.spec)
        if missing:
            self._wait_for_tree(now, missing)
            return
        self.waiting = None
        self.tree_retry_at = None
        self.last_print = tree_fingerprint(self.spec)
        if self.quarantined is not None and self.last_print == self.quarantined[0]:
            self.wanted = None
            why = f"reload refused: this tree was already refused ({self.quarantined[1]})"
            self.log(f"{why}; it is not tried again until it changes")
            why += "; change it to try again"
            self.on_refused(wanted.seqs, why, "refused: quarantined", wanted.reason)
            return
        if state is State.BACKOFF or not self._needs_check(wanted.mode):
            self._forward(now, wanted)
        else:
            self._check(now, wanted)

    def _needs_check(self, mode: ReloadMode) -> bool:
        return self.spec.watch.preflight and mode is not ReloadMode.SWAP

    def _wait_for_tree(self, now: float, missing: list[str]) -> None:
        waiting = "waiting for the app tree: " + "; ".join(missing)
        if waiting != self.waiting:
            self.log(f"{waiting} (a deploy in progress?); the running code keeps serving")
        self.waiting = waiting
        self.tree_retry_at = now + TREE_POLL

    def _check(self, now: float, wanted: Wanted) -> None:
        """Start the import check of the tree as it is now."""
        try:
            write_entry(self.spec)
            self.preflight.start(now, self.spec)
        except OSError as exc:
            # The tree vanished between the look and the start, a full disk:
            # nothing to reload onto yet. Keep serving; look again shortly.
            self.log(f"cannot run the import check: {exc}; the running code keeps serving")
            self.tree_retry_at = now + TREE_POLL
            return
        self.wanted = None
        self.checking = wanted
        self.stale = False
        self.unsettled_since = None

    def _checked(self, now: float, result: PreflightResult) -> None:
        checked, self.checking = self.checking, None
        assert checked is not None
        if self.stale or self.wanted is not None:
            # The result speaks for a tree (or a spec) that is gone: check anew.
            what = "tree" if self.stale else "request"
            self.stale = False
            self.log(f"a new {what} came during the import check; checking again")
            self.wanted = checked if self.wanted is None else self._merged(checked, self.wanted)
            self.tick(now)
            return
        if not result.ok:
            self.quarantine(result.summary)
            self.refused = f"reload refused: {result.summary}"
            self.log(
                f"{self.refused} ({checked.reason}); the running code keeps serving."
                f" Import check output:\n{result.output.rstrip()}"
            )
            self.on_refused(checked.seqs, self.refused, "refused by import check", checked.reason)
            return
        if self.machine.state is State.RUNNING:
            self._forward(now, checked)
        else:  # uWSGI went down meanwhile: try once it is back (or start it now)
            self.wanted = checked if self.wanted is None else self._merged(checked, self.wanted)
            self.tick(now)

    def quarantine(self, why: str) -> None:
        """The tree last checked or handed on failed: never try it again as it is."""
        if self.last_print is not None:
            self.quarantined = (self.last_print, why)

    @staticmethod
    def _merged(first: Wanted, then: Wanted) -> Wanted:
        merged = first
        for seq in then.seqs or (0,):
            merged = merged.merge(then.mode, then.reason, seq)
        return merged

    def _forward(self, now: float, wanted: Wanted) -> None:
        self.wanted = None
        self.unsettled_since = None
        self.refused = None
        self.machine.request_reload(now, wanted.mode, wanted.reason)
        self.on_forwarded(wanted.seqs)
