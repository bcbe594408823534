"""What the loop sleeps on, and why it wakes.

The loop sleeps until its soonest deadline or until something happens: a
signal or another thread writes to its self-pipe, or uWSGI writes its log
(inotify, see `uwsgi.logwatch`). Lines come in bursts under load, so after
two wake-ups within OUTPUT_POLL the log is not heard again for OUTPUT_POLL:
a busy log is read five times a second, an idle one never.
"""

from __future__ import annotations

import os
import selectors
import signal
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Optional

from supervisor.uwsgi.logwatch import LogWatch

OUTPUT_POLL = 0.2  # uWSGI's log is read at most this often (and this often without inotify)


class Wakeups:
    def __init__(self) -> None:
        self.sel = selectors.DefaultSelector()
        self.wake_r, self.wake_w = os.pipe()
        self.logwatch = LogWatch()  # fd None: no inotify, uWSGI's log is polled
        self.log_rearm: Optional[float] = None  # when the log is heard again
        self.last_log_wake = 0.0
        self.log_polled = True  # no inotify, or a log file missing: look every OUTPUT_POLL

    def install(self) -> None:
        """Signals (through `signal.set_wakeup_fd`) and the log wake the loop from now on."""
        for fd in (self.wake_r, self.wake_w):
            os.set_blocking(fd, False)
        signal.set_wakeup_fd(self.wake_w, warn_on_full_buffer=False)
        self.sel.register(self.wake_r, selectors.EVENT_READ, "wake")
        if self.logwatch.fd is not None:
            self.sel.register(self.logwatch.fd, selectors.EVENT_READ, "log")

    def wake(self) -> None:
        """Wake the loop from another thread."""
        try:
            os.write(self.wake_w, b"\0")
        except BlockingIOError:
            pass

    def deadlines(self, now: float, reading: bool) -> list[Optional[float]]:
        """The log's own deadlines; `reading`: some uWSGI log is being followed."""
        if self.log_rearm is not None and now >= self.log_rearm:
            self.log_rearm = None
            assert self.logwatch.fd is not None
            self.sel.register(self.logwatch.fd, selectors.EVENT_READ, "log")
        return [self.log_rearm, now + OUTPUT_POLL if self.log_polled and reading else None]

    def sleep_until(
        self, now: float, deadlines: list[Optional[float]], longest: float, slack: float
    ) -> None:
        """Sleep until the soonest deadline (at most `longest`), or until woken.
        Deadlines within `slack` after the soonest share its wake-up: waking
        a little late is always safe, each timer checks whether it is due."""
        due = [d for d in deadlines if d is not None]
        soonest = min(due, default=now + longest)
        soonest = max(d for d in [*due, soonest] if d <= soonest + slack)
        self._sleep(max(0.0, min(soonest - now, longest + slack)))

    def _sleep(self, timeout: float) -> None:
        for key, _ in self.sel.select(timeout):
            if key.data == "log":  # uWSGI wrote: this turn reads it
                woke = time.monotonic()
                if woke - self.last_log_wake < OUTPUT_POLL:  # a burst
                    self.sel.unregister(key.fd)
                    self.log_rearm = self.last_log_wake + OUTPUT_POLL
                self.last_log_wake = woke
            else:
                try:
                    while os.read(self.wake_r, 4096):
                        pass
                except BlockingIOError:
                    pass

    def before_reading(self) -> None:
        """Called just before the logs are read: what is written after wakes us again."""
        self.logwatch.drain()

    def after_reading(self, paths: Iterable[Path]) -> None:
        self.log_polled = not self.logwatch.follow(paths)

    def close(self) -> None:
        self.logwatch.close()
