"""The verdict on each reload asked for by signal, for `reload --wait`.

A reload asked for by `reload`, SIGHUP, SIGUSR1/2 or `systemctl reload` gets
a sequence number. It is refused at once (a bad spec), refused by the gate
(code that does not import), or handed to the machine; then it is settled
when the machine has served it or failed. `current` is what the state file
carries: the newest verdict.
"""

from __future__ import annotations

import time
from typing import Callable, Optional

from supervisor.lifecycle.machine import Machine
from supervisor.lifecycle.states import State
from supervisor.status import ReloadVerdict


class Verdicts:
    def __init__(self) -> None:
        self.seq = 0  # the last number given out
        self.current = ReloadVerdict(seq=0, ok=True, message="")
        self.awaiting = 0  # handed to the machine, not settled yet
        self.awaiting_generation = 0  # the generation that served when it was handed over
        self.awaiting_rollbacks = 0
        self.asked: dict[int, float] = {}  # seq -> when it was asked for

    def next_seq(self) -> int:
        self.seq += 1
        self.asked[self.seq] = time.time()
        return self.seq

    def _decide(self, seq: int, ok: bool, message: str, kind: str) -> None:
        asked = self.asked.pop(seq, time.time())
        for older in [s for s in self.asked if s < seq]:  # coalesced into this one
            del self.asked[older]
        self.current = ReloadVerdict(
            seq=seq, ok=ok, message=message, kind=kind, asked_at=asked, decided_at=time.time()
        )

    def refuse_now(self, message: str) -> None:
        """A reload refused before it was even asked of the gate."""
        self._decide(self.next_seq(), False, message, "refused")

    def forwarded(self, seqs: tuple[int, ...], generation: int, rollbacks: int = 0) -> None:
        """The gate handed these to the machine: settle them when it is done."""
        if seqs:
            self.awaiting = max(seqs)
            self.awaiting_generation = generation
            self.awaiting_rollbacks = rollbacks

    def refused(self, seqs: tuple[int, ...], message: str, kind: str = "refused") -> None:
        if seqs:
            self._decide(max(seqs), False, message, kind)

    def settle(self, m: Machine, last_error: Callable[[], Optional[str]]) -> None:
        """Record the outcome of the reload handed to the machine, once there is one."""
        if not self.awaiting:
            return
        outcome = reload_outcome(m, self.awaiting_generation, self.awaiting_rollbacks, last_error)
        if outcome is None:
            return
        self._decide(self.awaiting, *outcome)
        self.awaiting = 0


def reload_outcome(
    m: Machine, generation: int, rollbacks: int, last_error: Callable[[], Optional[str]]
) -> Optional[tuple[bool, str, str]]:
    """(ok, message, kind) of a reload handed to the machine when it served
    `generation` after `rollbacks` rollbacks; None while it is not decided."""
    if m.rollbacks > rollbacks:
        return False, m.rolled_back or "rolled back", "rolled back"
    if m.state is State.RUNNING and m.bake_until is not None:
        return None  # verified only once the bake is over
    if m.state is State.RUNNING and m.reload is None and m.pending is None:
        if m.generation > generation and m.reload_unhealthy:
            return False, m.reload_unhealthy, "applied, health check failing"
        if m.generation > generation:
            return True, f"reloaded: generation {m.generation}", "applied"
        # a swap whose new master never served: the old code serves
        message = m.swap_failed or "the reload did not complete"
        return False, message, _refusal_kind(message)
    if m.state in (State.BACKOFF, State.FATAL, State.STOPPED):
        return False, f"reload failed: {m.state.value}: {last_error()}", "failed"
    return None


def _refusal_kind(message: str) -> str:
    if "health check failed" in message:
        return "refused by health check"
    if "did not serve within" in message:
        return "timed out"
    return "refused"
