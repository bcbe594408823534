"""Find and end processes of a uWSGI instance, including ones whose master died."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Callable, Optional

from supervisor.uwsgi.command import INSTANCE_MARK, INSTANCE_TAG


def instance_pids(
    runtime_dir: Path, tag: Optional[str] = None, spare: Optional[str] = None
) -> list[int]:
    """PIDs of live processes started for this runtime dir (workers included).

    uWSGI workers inherit the mark in their environment, which survives both
    their master's death and `procname` options that rewrite the cmdline.
    With `tag`, only processes of that one instance; with `spare`, none of
    that one (an adopted master's).
    """
    mark = f"{INSTANCE_MARK}={runtime_dir}".encode() + b"\0"
    tag_mark = f"{INSTANCE_TAG}={tag}".encode() + b"\0" if tag is not None else b""
    spare_mark = b"\0" + f"{INSTANCE_TAG}={spare}".encode() + b"\0" if spare else b""
    me = os.getpid()
    found = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit() or int(entry.name) == me:
            continue
        try:
            with open(f"/proc/{entry.name}/environ", "rb") as f:
                env = f.read()
        except OSError:
            continue  # gone, or not ours to read
        env = b"\0" + env
        if b"\0" + mark not in env or (tag_mark and b"\0" + tag_mark not in env):
            continue
        if spare_mark and spare_mark in env:
            continue
        if not _is_zombie(int(entry.name)):
            found.append(int(entry.name))
    return sorted(found)


def _is_zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            fields = f.read().rsplit(b")", 1)[1].split()
        return fields[0] in (b"Z", b"X")  # exited; its files are closed
    except (OSError, IndexError):
        return True


def parent_pid(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return int(f.read().rsplit(b")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return 0


def signal_pids(pids: list[int], sig: int) -> None:
    for pid in pids:
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass


def kill_leftovers(
    runtime_dir: Path, tag: Optional[str] = None, wait: float = 5.0, spare: Optional[str] = None
) -> list[int]:
    """SIGKILL every process of the instance(s) and wait until they are gone."""
    pids = instance_pids(runtime_dir, tag, spare)
    if not pids:
        return []
    signal_pids(pids, signal.SIGKILL)
    deadline = time.monotonic() + wait
    while not exited(pids) and time.monotonic() < deadline:
        time.sleep(0.02)
    return pids


def exited(pids: list[int]) -> bool:
    """Every one of `pids` has finished exiting (a zombie, or reaped).

    Not the same as instance_pids() no longer finding it: a dying process
    loses its environ (its memory) before it closes its files, and one of
    those files may be the listening socket the next master must bind.
    """
    return all(_is_zombie(pid) for pid in pids)


def wait_gone(
    runtime_dir: Path, timeout: float, tick: Callable[[], None], spare: Optional[str] = None
) -> bool:
    """Wait until no process of the instance is left; `tick` runs between polls."""
    deadline = time.monotonic() + timeout
    seen: set[int] = set()
    while True:
        found = instance_pids(runtime_dir, spare=spare)
        seen.update(found)
        if not found and exited(sorted(seen)):
            return True
        if time.monotonic() >= deadline:
            return False
        tick()
        time.sleep(0.05)


def revive_fifo(pid: int, path: Path) -> bool:
    """Make master `pid` recreate its FIFO at `path` after someone deleted it.

    uWSGI recreates its FIFO (unlink, mkfifo, open) whenever its last writer
    closes. With the path gone nobody can write to it any more, but the
    master's own descriptor is reachable as /proc/PID/fd/N: opening that for
    writing and closing it gives the master its EOF. False: no such FIFO.
    """
    target = f"{path} (deleted)"
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return False
    for fd in fds:
        link = f"/proc/{pid}/fd/{fd}"
        try:
            if os.readlink(link) != target:
                continue
            writer = os.open(link, os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError:
            continue
        os.close(writer)
        return True
    return False
