"""Load while something reloads: threads sending GETs through 127.0.0.1, bounded in time.

Every request is kept as a timestamped `Sample` (benchmarks count the failures
within a window) and summed into a `LoadResult` (tests assert on failures, the
worst latency and which versions answered).
"""

from __future__ import annotations

import http.client
import threading
import time
from dataclasses import dataclass, field
from typing import Optional

from .net import LOOPBACK, http_get


@dataclass
class Sample:
    start: float  # monotonic
    end: float
    ok: bool


@dataclass
class LoadResult:
    ok: int = 0
    failed: int = 0
    worst: float = 0.0  # seconds, the slowest request, failed ones included
    errors: list[str] = field(default_factory=list)  # the first ten
    bodies: set[str] = field(default_factory=set)  # first word of each 200 body: the version


class Load:
    """`threads` threads GET `path` on 127.0.0.1:port until the `with` block ends.

    Each sends its next request as soon as the last one is answered, after
    `pause` seconds; none goes on past `limit` seconds. A request succeeds on
    200 only; a socket or HTTP protocol error is a failure too, recorded.
    """

    def __init__(
        self,
        port: int,
        path: str = "/",
        threads: int = 4,
        pause: float = 0.0,
        limit: float = 120.0,
        timeout: float = 30.0,
    ) -> None:
        self.target = f"{LOOPBACK}:{port}"
        self.path, self.pause, self.limit, self.timeout = path, pause, limit, timeout
        self.result = LoadResult()
        self.samples: list[Sample] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, daemon=True) for _ in range(threads)]

    def __enter__(self) -> Load:
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(30)

    def _run(self) -> None:
        deadline = time.monotonic() + self.limit
        while not self._stop.is_set() and time.monotonic() < deadline:
            start = time.monotonic()
            try:
                status, body = http_get(self.target, self.path, self.timeout)
                error = "" if status == 200 else f"HTTP {status}: {body[:80]}"
            except (OSError, http.client.HTTPException) as exc:
                body, error = "", f"{type(exc).__name__}: {exc}"
            end = time.monotonic()
            with self._lock:
                self.samples.append(Sample(start, end, not error))
                r = self.result
                r.worst = max(r.worst, end - start)
                if not error:
                    r.ok += 1
                    r.bodies.add(body.split(" ")[0])
                else:
                    r.failed += 1
                    if len(r.errors) < 10:
                        r.errors.append(error)
            if self.pause:
                time.sleep(self.pause)

    def failed_between(self, t0: float, t1: float) -> int:
        """Failed requests that were in flight at some time within [t0, t1]."""
        with self._lock:
            return sum(1 for s in self.samples if not s.ok and s.end >= t0 and s.start <= t1)

    def last_failure_between(self, t0: float, t1: float) -> Optional[float]:
        """When the last failed request within [t0, t1] ended (monotonic), if any."""
        with self._lock:
            ends = [s.end for s in self.samples if not s.ok and s.end >= t0 and s.start <= t1]
        return max(ends, default=None)

    def count_between(self, t0: float, t1: float) -> int:
        """All requests that were in flight at some time within [t0, t1]."""
        with self._lock:
            return sum(1 for s in self.samples if s.end >= t0 and s.start <= t1)
