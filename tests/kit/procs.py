"""Read processes from /proc, and end the ones a test or benchmark started."""

from __future__ import annotations

import os
import signal
import time
from typing import Callable

CLK_TCK = os.sysconf("SC_CLK_TCK")


def _stat_fields(pid: int) -> list[bytes]:
    """/proc/PID/stat after the command name (which may hold spaces and parentheses)."""
    with open(f"/proc/{pid}/stat", "rb") as f:
        return f.read().rsplit(b")", 1)[1].split()


def alive(pid: int) -> bool:
    """True while `pid` exists and is not a zombie."""
    try:
        return _stat_fields(pid)[0] != b"Z"
    except (OSError, IndexError):
        return False


def children(pid: int) -> list[int]:
    """PIDs whose parent is `pid`, from a scan of /proc."""
    found = []
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                if int(_stat_fields(int(entry.name))[1]) == pid:
                    found.append(int(entry.name))
            except (OSError, IndexError, ValueError):
                continue
    return found


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of one process so far; 0.0 once it is gone."""
    try:
        f = _stat_fields(pid)
        return (int(f[11]) + int(f[12])) / CLK_TCK
    except (OSError, IndexError, ValueError):
        return 0.0


def _per_task(pid: int, name: str, read: Callable[[str], int]) -> int:
    """The sum of `read(text)` over /proc/PID/task/*/`name` of the threads alive
    now; 0 once the process is gone."""
    total = 0
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return 0
    for task in tasks:
        try:
            with open(f"/proc/{pid}/task/{task}/{name}") as f:
                total += read(f.read())
        except (OSError, ValueError, IndexError):
            continue
    return total


def cpu_ns(pid: int) -> int:
    """CPU time of the threads of `pid` alive now, in ns (the scheduler's own
    count, /proc/PID/task/TID/schedstat: exact, where /proc/PID/stat counts
    10-ms ticks); 0 once it is gone."""
    return _per_task(pid, "schedstat", lambda text: int(text.split()[0]))


def _voluntary_switches(status: str) -> int:
    for line in status.splitlines():
        if line.startswith("voluntary_ctxt_switches:"):
            return int(line.split()[1])
    return 0


def wakeups(pid: int) -> int:
    """Times the threads of `pid` alive now went to sleep and woke up (voluntary
    context switches); 0 once it is gone."""
    return _per_task(pid, "status", _voluntary_switches)


def rss_mib(pid: int) -> float:
    """Resident memory of one process in MiB; 0.0 once it is gone."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def kill_pids(pids: list[int], wait: float = 5.0) -> None:
    """SIGKILL these processes (ours: started or found by their mark) and wait for them."""
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + wait
    while any(alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.02)
