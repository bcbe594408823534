"""Write one-byte commands to a uWSGI master FIFO."""

from __future__ import annotations

import errno
import os
import stat
import time
from pathlib import Path

FIFO_COMMANDS = {
    "r": "graceful reload",
    "c": "chain reload",
    "w": "reload workers",
    "R": "brutal reload",
    "q": "graceful shutdown",
    "Q": "brutal shutdown",
    "l": "reopen logs",
    "L": "rotate logs",
    "p": "pause or resume",
}


class FifoNotReady(Exception):
    """No uWSGI master is reading the FIFO right now (between execs, or gone)."""


def write_fifo(path: Path, command: str) -> None:
    """Write command bytes to the master FIFO, once, in one write.

    Opens, writes and closes every time: the master re-creates the FIFO after
    each writer closes, so a cached descriptor would point at a dead inode.
    Several commands (e.g. "pq": resume, then quit) go in one write (atomic, far
    below PIPE_BUF): the master reads them one by one before the writer's
    close makes it re-create the FIFO, so none is lost in between.
    Raises FifoNotReady when nobody reads it (ENXIO: master between execs;
    ENOENT: not created yet) so the caller can retry on its own schedule.
    """
    if not command or any(c not in FIFO_COMMANDS for c in command):
        raise ValueError(f"unknown master FIFO command {command!r}")
    try:
        st = os.stat(path)
    except FileNotFoundError as exc:
        raise FifoNotReady(f"{path} does not exist") from exc
    if not stat.S_ISFIFO(st.st_mode):
        raise FifoNotReady(f"{path} is not a FIFO")
    try:
        fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        if exc.errno in (errno.ENXIO, errno.ENOENT):
            raise FifoNotReady(f"no uWSGI master reads {path}") from exc
        raise
    try:
        os.write(fd, command.encode())
    finally:
        os.close(fd)


def write_fifo_retry(path: Path, command: str, timeout: float = 5.0) -> None:
    """write_fifo, retrying while the master is between execs (CLI use only)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            write_fifo(path, command)
            return
        except FifoNotReady:
            if time.monotonic() >= deadline:
                raise
            time.sleep(0.05)
