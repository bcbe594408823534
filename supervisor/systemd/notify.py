"""Tell systemd what we are doing (sd_notify through `sdnotify`), systemd or not."""

from __future__ import annotations

import os
import time
from typing import Optional

import sdnotify


def watchdog_period(environ: os._Environ[str] | dict[str, str]) -> Optional[float]:
    """The watchdog period in seconds if systemd asked *us* to ping, else None."""
    usec = environ.get("WATCHDOG_USEC")
    if not usec:
        return None
    pid = environ.get("WATCHDOG_PID")
    if pid and pid.isdigit() and int(pid) != os.getpid():
        return None
    try:
        value = int(usec)
    except ValueError:
        return None
    return value / 1e6 if value > 0 else None


class Notifier:
    """sd_notify messages; silent no-ops when NOTIFY_SOCKET is unset.

    Never blocks: a busy or stuck receiver (a full datagram queue) must not
    freeze the loop. Messages that do not fit wait in `pending` and go out,
    in order, on the next `flush()`; only STATUS and WATCHDOG are ever dropped.
    """

    MAX_PENDING = 64

    def __init__(self) -> None:
        self.enabled = bool(os.environ.get("NOTIFY_SOCKET"))
        self._sd = sdnotify.SystemdNotifier(debug=False)
        self._sock = getattr(self._sd, "socket", None)
        if self._sock is not None:
            self._sock.setblocking(False)
        self.pending: list[bytes] = []
        self._last_status = ""

    def send(self, *lines: str) -> None:
        if not self.enabled or self._sock is None:
            return
        self.pending.append("\n".join(lines).encode())
        if len(self.pending) > self.MAX_PENDING:
            self.pending = [m for m in self.pending if not _droppable(m)][-self.MAX_PENDING :]
        self.flush()

    def flush(self) -> None:
        while self.pending and self._sock is not None:
            try:
                self._sock.send(self.pending[0])
            except (BlockingIOError, InterruptedError):
                return  # the receiver is busy: try again on the next loop iteration
            except OSError:
                pass  # no receiver at all (systemd gone): nothing to keep it for
            self.pending.pop(0)

    def ready(self, status: str) -> None:
        self._last_status = status
        self.send(f"STATUS={status}", "READY=1")

    def reloading(self, status: str) -> None:
        usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        self._last_status = status
        self.send("RELOADING=1", f"MONOTONIC_USEC={usec}", f"STATUS={status}")

    def stopping(self, status: str) -> None:
        self._last_status = status
        self.send("STOPPING=1", f"STATUS={status}")

    def status(self, status: str) -> None:
        if status != self._last_status:
            self._last_status = status
            self.send(f"STATUS={status}")

    def watchdog(self) -> None:
        self.send("WATCHDOG=1")


def _droppable(message: bytes) -> bool:
    return all(line.startswith((b"STATUS=", b"WATCHDOG=")) for line in message.split(b"\n"))
