"""The supervisor's own log lines: concise, and journald-friendly.

Under systemd (stderr is the journal, per JOURNAL_STREAM) lines carry a
syslog priority prefix and no timestamp, since journald adds its own.
Elsewhere each line starts with the time.
"""

from __future__ import annotations

import os
import sys
import time
from typing import IO, Optional


def stderr_is_journal(stream: IO[str]) -> bool:
    value = os.environ.get("JOURNAL_STREAM", "")
    if ":" not in value:
        return False
    try:
        st = os.fstat(stream.fileno())
    except (OSError, ValueError):
        return False
    dev, _, ino = value.partition(":")
    return f"{st.st_dev}:{st.st_ino}" == f"{dev}:{ino}"


class Logger:
    def __init__(self, name: str, stream: Optional[IO[str]] = None) -> None:
        self.stream = stream or sys.stderr
        self.name = name
        self.journal = stderr_is_journal(self.stream)

    def _write(self, priority: int, message: str) -> None:
        if self.journal:
            text = "".join(f"<{priority}>{line}\n" for line in message.splitlines() or [""])
        else:
            stamp = time.strftime("%Y-%m-%d %H:%M:%S")
            text = f"{stamp} uwsgi-supervisor[{self.name}]: {message}\n"
        try:
            self.stream.write(text)
            self.stream.flush()
        except (OSError, ValueError):
            pass  # a full disk or a closed journal must not stop supervision

    def info(self, message: str) -> None:
        self._write(6, message)

    def warning(self, message: str) -> None:
        self._write(4, message)

    def error(self, message: str) -> None:
        self._write(3, message)
