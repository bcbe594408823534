"""Talk to a running uWSGI master: write its master FIFO, read its stats socket."""

from __future__ import annotations

import errno
import json
import os
import socket
import stat
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

FIFO_COMMANDS = {
    "r": "graceful reload",
    "c": "chain reload",
    "w": "reload workers",
    "R": "brutal reload",
    "q": "graceful shutdown",
    "Q": "brutal shutdown",
    "l": "reopen logs",
    "L": "rotate logs",
}


class FifoNotReady(Exception):
    """No uWSGI master is reading the FIFO right now (between execs, or gone)."""


def write_fifo(path: Path, command: str) -> None:
    """Write one command byte to the master FIFO, once.

    Opens, writes and closes every time: the master re-creates the FIFO after
    each writer closes, so a cached descriptor would point at a dead inode.
    Raises FifoNotReady when nobody reads it (ENXIO: master between execs;
    ENOENT: not created yet) so the caller can retry on its own schedule.
    """
    if command not in FIFO_COMMANDS:
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


@dataclass(frozen=True)
class Worker:
    id: int
    pid: int
    accepting: bool
    status: str
    requests: int
    exceptions: int
    rss: int
    last_spawn: int
    respawn_count: int
    apps: int

    @property
    def serving(self) -> bool:
        return self.accepting and self.apps > 0 and self.pid > 0


@dataclass(frozen=True)
class Stats:
    """One reading of the stats socket, reduced to what decisions need."""

    pid: int
    version: str
    listen_queue: int
    workers: tuple[Worker, ...]
    raw: dict[str, Any]

    @property
    def serving_workers(self) -> int:
        return sum(1 for w in self.workers if w.serving)

    @property
    def all_serving(self) -> bool:
        return bool(self.workers) and all(w.serving for w in self.workers)

    @property
    def requests(self) -> int:
        return sum(w.requests for w in self.workers)


def parse_stats(doc: dict[str, Any]) -> Stats:
    workers = tuple(
        Worker(
            id=int(w.get("id", 0)),
            pid=int(w.get("pid", 0)),
            accepting=bool(w.get("accepting", 0)),
            status=str(w.get("status", "")),
            requests=int(w.get("requests", 0)),
            exceptions=int(w.get("exceptions", 0)),
            rss=int(w.get("rss", 0)),
            last_spawn=int(w.get("last_spawn", 0)),
            respawn_count=int(w.get("respawn_count", 0)),
            apps=len(w.get("apps") or ()),
        )
        for w in doc.get("workers", ())
    )
    return Stats(
        pid=int(doc.get("pid", 0)),
        version=str(doc.get("version", "")),
        listen_queue=int(doc.get("listen_queue", 0)),
        workers=workers,
        raw=doc,
    )


def read_stats_raw(path: Path, timeout: float = 1.0) -> Optional[dict[str, Any]]:
    """One JSON document from the stats socket, or None if uWSGI does not answer.

    A stopped (SIGSTOPped) master accepts in the kernel backlog but never
    writes: the timeout turns that into None, which is what the watchdog needs.
    """
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    chunks: list[bytes] = []
    deadline = time.monotonic() + timeout
    try:
        sock.connect(str(path))
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            sock.settimeout(remaining)
            chunk = sock.recv(65536)
            if not chunk:
                break
            chunks.append(chunk)
    except OSError:
        return None
    finally:
        sock.close()
    try:
        doc = json.loads(b"".join(chunks).decode("utf-8", "replace"))
    except ValueError:
        return None
    return doc if isinstance(doc, dict) else None


def read_stats(path: Path, timeout: float = 1.0) -> Optional[Stats]:
    doc = read_stats_raw(path, timeout)
    return None if doc is None else parse_stats(doc)
