"""Wake the loop when uWSGI writes its log, instead of looking every 0.2 s.

One inotify descriptor (the loop selects on it) watches each log file for
writes and for being moved or deleted (uWSGI's size-capped rotation,
logrotate, an `mv`); after that, the file at the path is watched anew. Not
the directory: the state file beside the log changes too, and would wake
the loop for nothing. Events are only a wake-up: the loop then reads the
files as before, so a merged event costs nothing. While a log file is
missing (a rotation between its rename and the new file), and without
inotify at all (`fd` None), the loop polls.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import struct
from collections.abc import Iterable
from pathlib import Path
from typing import Optional

IN_MODIFY = 0x002
IN_ATTRIB = 0x004
IN_DELETE_SELF = 0x400
IN_MOVE_SELF = 0x800
IN_CLOEXEC = 0o2000000
IN_NONBLOCK = 0o4000

FILE_EVENTS = IN_MODIFY | IN_ATTRIB | IN_MOVE_SELF | IN_DELETE_SELF


class LogWatch:
    def __init__(self) -> None:
        self.fd: Optional[int] = None
        self._libc: Optional[ctypes.CDLL] = None
        self._watched: dict[Path, int] = {}  # path -> watch descriptor (-1: no file yet)
        self._stale = False  # a log file was moved or deleted: watch the path anew
        self.error: Optional[str] = None
        try:
            libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
            fd = libc.inotify_init1(IN_NONBLOCK | IN_CLOEXEC)
        except (OSError, AttributeError) as exc:
            self.error = f"inotify unavailable: {exc}"
            return
        if fd < 0:
            self.error = f"inotify unavailable: {os.strerror(ctypes.get_errno())}"
            return
        self._libc, self.fd = libc, fd

    def _add(self, path: Path, mask: int) -> int:
        assert self._libc is not None
        return int(self._libc.inotify_add_watch(self.fd, os.fsencode(path), mask))

    def follow(self, paths: Iterable[Path]) -> bool:
        """Watch exactly these log files (anew after a rotation); False while
        one of them is missing or unwatchable: then the loop must poll."""
        if self.fd is None:
            return False
        wanted = set(paths)
        if wanted != set(self._watched) or self._stale or -1 in self._watched.values():
            self._stale = False
            # Re-adding a watch on the same inode is harmless; on a new file
            # (after a rotation) it is what keeps the wake-ups coming. The
            # watch of a file that went away ends by itself.
            self._watched = {path: self._add(path, FILE_EVENTS) for path in wanted}
        return -1 not in self._watched.values()

    def drain(self) -> bool:
        """Consume pending events; True if there were any."""
        if self.fd is None:
            return False
        seen = False
        while True:
            try:
                data = os.read(self.fd, 65536)
            except BlockingIOError:
                return seen
            if not data:
                return seen
            seen = True
            for mask in _masks(data):
                self._stale = self._stale or bool(mask & ~IN_MODIFY)

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


_HEADER = struct.Struct("iIII")  # struct inotify_event: wd, mask, cookie, len; then the name


def _masks(data: bytes) -> Iterable[int]:
    offset = 0
    while offset + _HEADER.size <= len(data):
        _wd, mask, _cookie, length = _HEADER.unpack_from(data, offset)
        yield mask
        offset += _HEADER.size + length
