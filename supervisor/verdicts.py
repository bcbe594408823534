"""The verdict on each reload asked for by signal, for `reload --wait`.

A reload asked for by `reload`, SIGHUP, SIGUSR1/2 or `systemctl reload` gets
a sequence number. It is refused at once (a bad spec), refused by the gate
(code that does not import), or handed to the machine; then it is settled
when the machine has served it or failed. `current` is what the state file
carries: the newest verdict.
"""

from __future__ import annotations

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

    def next_seq(self) -> int:
        self.seq += 1
        return self.seq

    def refuse_now(self, message: str) -> None:
        """A reload refused before it was even asked of the gate."""
        self.current = ReloadVerdict(seq=self.next_seq(), ok=False, message=message)

    def forwarded(self, seqs: tuple[int, ...], generation: int) -> None:
        """The gate handed these to the machine: settle them when it is done."""
        if seqs:
            self.awaiting = max(seqs)
            self.awaiting_generation = generation

    def refused(self, seqs: tuple[int, ...], message: str) -> None:
        if seqs:
            self.current = ReloadVerdict(seq=max(seqs), ok=False, message=message)

    def settle(self, m: Machine, last_error: Callable[[], Optional[str]]) -> None:
        """Record the outcome of the reload handed to the machine, once there is one."""
        if not self.awaiting:
            return
        if m.state is State.RUNNING and m.reload is None and m.pending is None:
            if m.generation > self.awaiting_generation and m.reload_unhealthy:
                ok, message = False, m.reload_unhealthy
            elif m.generation > self.awaiting_generation:
                ok, message = True, f"reloaded: generation {m.generation}"
            else:  # a swap whose new master never served: the old code serves
                ok, message = False, m.swap_failed or "the reload did not complete"
        elif m.state in (State.BACKOFF, State.FATAL, State.STOPPED):
            ok, message = False, f"reload failed: {m.state.value}: {last_error()}"
        else:
            return
        self.current = ReloadVerdict(seq=self.awaiting, ok=ok, message=message)
        self.awaiting = 0
