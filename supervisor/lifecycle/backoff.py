"""Restart delays after crashes: immediate first retry, then exponential with jitter."""

from __future__ import annotations

import random
from typing import Callable

from supervisor.spec.model import BackoffSpec


def restart_delay(
    attempt: int, policy: BackoffSpec, rand: Callable[[], float] = random.random
) -> float:
    """Seconds to wait before restart number `attempt` (1 for the first crash).

    The first restart is immediate: a single crash is usually a one-off (an OOM
    kill, a stray signal) and every second of waiting is downtime. From the
    second on: initial * factor**(attempt-2), capped at max, then spread by
    +/- jitter so a fleet of hosts does not retry a shared database in lockstep.
    """
    if attempt <= 1:
        return 0.0
    try:
        base = min(policy.max, policy.initial * policy.factor ** (attempt - 2))
    except OverflowError:  # about 1,000 crashes in a row: long capped at max
        base = policy.max
    spread = base * policy.jitter * (2.0 * rand() - 1.0)
    return max(0.0, min(policy.max, base + spread))
