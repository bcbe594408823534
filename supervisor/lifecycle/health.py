"""The health checks the machine asks for: which master, when, and how many
passes in a row it has so far. Pure bookkeeping; the loop runs each check
(on a thread) and reports its outcome back through the machine."""

from __future__ import annotations

import enum
from typing import Optional

from supervisor.spec.model import HealthSpec

# The gap between consecutive passes a master needs, and how soon a starting
# master that failed a check is checked again.
PROBE_GAP = 0.25
PROBE_RETRY = 1.0
BAKE_PROBE = 1.0  # while a swapped-in master bakes, it is checked this often
CURRENT, NEXT = "current", "next"  # the serving master, the swap candidate


class Outcome(enum.Enum):
    PASSED = "passed"  # enough passes in a row: the master may take traffic
    AGAIN = "again"  # a pass, and the next check is scheduled
    FAILED = "failed"


class HealthChecks:
    def __init__(self) -> None:
        self.target: Optional[str] = None  # a check is wanted for this master ...
        self.at = 0.0  # ... at this time
        self.probing = False  # a check is in flight
        self.passes = 0
        self.failure: Optional[str] = None  # the last failed check, while failing

    def reset(self) -> None:
        self.target = None
        self.passes = 0

    def verified(self, now: float, target: str, health: HealthSpec) -> bool:
        """True once `target` passed often enough; until then a check is wanted
        (never two at once)."""
        if not health.enabled or self.passes >= health.passes:
            return True
        if self.target is None and not self.probing:
            self.target, self.at = target, now
        return False

    def due(self, now: float) -> Optional[str]:
        if self.target is None or self.probing or now < self.at:
            return None
        target, self.target = self.target, None
        self.probing = True
        return target

    def deadline(self) -> Optional[float]:
        return self.at if self.target is not None and not self.probing else None

    def outcome(
        self, now: float, target: str, ok: bool, detail: str, health: HealthSpec
    ) -> Outcome:
        """Count a check's result; schedule the next check after a pass."""
        self.probing = False
        if not ok:
            self.passes = 0
            self.failure = detail
            return Outcome.FAILED
        self.passes += 1
        if self.passes >= health.passes:
            self.failure = None
            return Outcome.PASSED
        self.target, self.at = target, now + PROBE_GAP
        return Outcome.AGAIN

    def retry(self, now: float, target: str, after: float = PROBE_RETRY) -> None:
        self.probing = False
        self.target, self.at = target, now + after
