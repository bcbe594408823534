"""A small HTTP load generator for reload tests: counts failures and worst latency."""

from __future__ import annotations

import http.client
import threading
import time
from dataclasses import dataclass, field


@dataclass
class LoadResult:
    ok: int = 0
    failed: int = 0
    worst: float = 0.0
    errors: list[str] = field(default_factory=list)
    bodies: set[str] = field(default_factory=set)


class Hammer:
    """Threads that GET a URL back to back until stopped; bounded in time."""

    def __init__(
        self, host: str, port: int, path: str = "/", threads: int = 4, limit: float = 120.0
    ) -> None:
        self.host, self.port, self.path = host, port, path
        self.result = LoadResult()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._limit = limit
        self._threads = [threading.Thread(target=self._run, daemon=True) for _ in range(threads)]

    def __enter__(self) -> Hammer:
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(30)

    def _run(self) -> None:
        deadline = time.monotonic() + self._limit
        while not self._stop.is_set() and time.monotonic() < deadline:
            start = time.monotonic()
            try:
                conn = http.client.HTTPConnection(self.host, self.port, timeout=30)
                conn.request("GET", self.path)
                resp = conn.getresponse()
                body = resp.read().decode(errors="replace")
                conn.close()
                good = resp.status == 200
                err = "" if good else f"HTTP {resp.status}: {body[:80]}"
            except OSError as exc:
                good, body, err = False, "", f"{type(exc).__name__}: {exc}"
            took = time.monotonic() - start
            with self._lock:
                r = self.result
                r.worst = max(r.worst, took)
                if good:
                    r.ok += 1
                    r.bodies.add(body.split(" ")[0])
                else:
                    r.failed += 1
                    if len(r.errors) < 10:
                        r.errors.append(err)
