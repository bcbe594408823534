"""States of the supervised uWSGI master and the transitions allowed between them.

Imports nothing from the package: it is the vocabulary everything else uses.
"""

from __future__ import annotations

import enum


class State(enum.Enum):
    STOPPED = "stopped"  # nothing running; before the first start, after the last stop
    STARTING = "starting"  # uWSGI spawned, not every worker serving yet
    RUNNING = "running"  # every worker serving the current code
    RELOADING = "reloading"  # reload under way, old code may still serve
    BACKOFF = "backoff"  # uWSGI exited unexpectedly; waiting before the next start
    STOPPING = "stopping"  # `q` sent, waiting for uWSGI to exit
    FATAL = "fatal"  # gave up after restart.max_attempts crashes


S = State

TRANSITIONS: dict[State, frozenset[State]] = {
    S.STOPPED: frozenset({S.STARTING}),
    S.STARTING: frozenset({S.RUNNING, S.BACKOFF, S.STOPPING, S.FATAL}),
    S.RUNNING: frozenset({S.RELOADING, S.BACKOFF, S.STOPPING, S.FATAL}),
    S.RELOADING: frozenset({S.RUNNING, S.BACKOFF, S.STOPPING, S.FATAL}),
    S.BACKOFF: frozenset({S.STARTING, S.STOPPED}),
    S.STOPPING: frozenset({S.STOPPED, S.STARTING}),
    S.FATAL: frozenset(),
}


class IllegalTransition(RuntimeError):
    pass


def check_transition(old: State, new: State) -> None:
    """Raise IllegalTransition unless old -> new is in the table."""
    if new not in TRANSITIONS[old]:
        raise IllegalTransition(f"{old.value} -> {new.value} is not an allowed transition")
