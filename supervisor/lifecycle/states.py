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


class StopIntent(enum.Enum):
    """What STOPPING leads to once uWSGI has exited."""

    EXIT = "exit"  # the supervisor stops too
    RESTART = "restart"  # a fresh uWSGI starts (spec change, failed reload)


S = State

# A uWSGI master of ours is alive (it may or may not serve yet).
UP_STATES = frozenset({S.STARTING, S.RUNNING, S.RELOADING})
# Its stats socket is worth reading: the machine decides on what it says.
POLLED_STATES = UP_STATES
# Readiness is being waited for: stats are read fast, so it is noticed at once.
WAITING_STATES = frozenset({S.STARTING, S.RELOADING, S.STOPPING})
# Nothing of ours runs.
DOWN_STATES = frozenset({S.STOPPED, S.BACKOFF, S.FATAL})
# `status` shows uWSGI's last lines in these: they explain why it is not serving.
TROUBLE_STATES = frozenset({S.BACKOFF, S.FATAL, S.STARTING})

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
