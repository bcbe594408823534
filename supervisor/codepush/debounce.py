"""Turn a stream of file changes into reload batches: one reload per code push.

Pure logic: no threads, no clock reads. The loop passes monotonic `now` in,
asks `deadline()` how long it may sleep, and calls `take()` once `due(now)`.

While a reload runs, the loop keeps calling `add()` but not `take()`: every
change that arrives meanwhile lands in one pending batch, so a finished reload
is followed by exactly one more reload, however many changes came in.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Optional

# How many changed paths a Batch carries for log lines.
SAMPLE_SIZE = 5


@dataclass(frozen=True)
class Change:
    """One change that counts toward a reload.

    kind is "modified", "created", "deleted", "moved" or "release"; "release"
    means a deploy symlink (or the watched directory itself) now leads to a
    different directory, and `path` is that new directory. `rel` is `path`
    relative to its watched root, for messages; empty when unknown.
    """

    path: str
    kind: str
    rel: str = ""

    @property
    def name(self) -> str:
        """How a person would name the changed file in a log line."""
        return self.rel or os.path.basename(self.path) or self.path


@dataclass(frozen=True)
class Batch:
    """The changes one reload answers for."""

    count: int  # distinct paths changed (a release flip counts as one)
    first: Change  # the change that opened the batch
    sample: tuple[str, ...]  # up to SAMPLE_SIZE changed paths, first seen first
    release: Optional[str]  # the directory the last release flip led to, if any
    first_at: float  # `now` of the first and the last add() that brought changes
    last_at: float
    reason: str  # for people: "blog.py changed", "release flipped to /srv/app/releases/2"


class Debouncer:
    """Collects changes until a quiet window passes or the max_wait cap is hit."""

    def __init__(self, quiet: float, max_wait: float) -> None:
        if quiet < 0:
            raise ValueError(f"quiet must be >= 0, got {quiet!r}")
        if max_wait <= 0:
            raise ValueError(f"max_wait must be > 0, got {max_wait!r}")
        self.quiet = quiet
        self.max_wait = max_wait
        self._reset()

    def _reset(self) -> None:
        # path -> latest Change for it; dicts keep first-seen order.
        self._changes: dict[str, Change] = {}
        self._first: Optional[Change] = None
        self._release: Optional[Change] = None
        self._first_at = 0.0
        self._last_at = 0.0

    @property
    def pending(self) -> bool:
        """True while changes wait to be taken."""
        return self._first is not None

    def add(self, now: float, changes: Sequence[Change]) -> None:
        """Record changes seen at `now`; an empty sequence changes nothing."""
        if not changes:
            return
        if self._first is None:
            self._first = changes[0]
            self._first_at = now
        self._last_at = now
        for change in changes:
            if change.kind == "release":
                self._release = change
            self._changes[change.path] = change

    def deadline(self) -> float | None:
        """When the pending batch becomes due; None if nothing is pending."""
        if self._first is None:
            return None
        return min(self._last_at + self.quiet, self._first_at + self.max_wait)

    def due(self, now: float) -> bool:
        """True once the pending batch should be reloaded for."""
        deadline = self.deadline()
        return deadline is not None and now >= deadline

    def take(self) -> Batch:
        """Hand over the pending batch and start afresh.

        Raises LookupError if nothing is pending: check `pending` or `due()`.
        """
        if self._first is None:
            raise LookupError("no changes pending")
        release = self._release.path if self._release is not None else None
        paths = list(self._changes)
        batch = Batch(
            count=len(paths),
            first=self._first,
            sample=tuple(paths[:SAMPLE_SIZE]),
            release=release,
            first_at=self._first_at,
            last_at=self._last_at,
            reason=_reason(self._first, self._changes, release),
        )
        self._reset()
        return batch


def _reason(first: Change, changes: dict[str, Change], release: Optional[str]) -> str:
    """A one-line account of a batch for logs and `systemctl status`."""
    if release is not None:
        others = len(changes) - sum(1 for c in changes.values() if c.kind == "release")
        text = f"release flipped to {release}"
        if others:
            text += f" and {others} other {_files(others)} changed"
        return text
    # The first change names the batch, unless it was a release (handled above).
    head = changes.get(first.path, first)
    others = len(changes) - 1
    if others == 0:
        verb = head.kind if head.kind in ("created", "deleted") else "changed"
        return f"{head.name} {verb}"
    return f"{head.name} and {others} other {_files(others)} changed"


def _files(n: int) -> str:
    return "file" if n == 1 else "files"
