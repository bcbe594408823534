"""Poll until something holds, with a deadline that names what was awaited."""

from __future__ import annotations

import time
from typing import Callable, Optional, TypeVar

T = TypeVar("T")


class WaitTimeout(AssertionError):
    """`wait_until` ran out of time: an assertion failure to pytest, an exception to bench."""


def wait_until(
    predicate: Callable[[], Optional[T]], timeout: float, what: str, interval: float = 0.05
) -> T:
    """Poll until predicate() is truthy and return that value.

    The deadline is generous and only there so a broken run fails instead of
    hanging; `what` goes into the message: "timed out after 30s waiting for ...".
    """
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise WaitTimeout(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(interval)
