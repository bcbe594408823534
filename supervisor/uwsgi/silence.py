"""What /proc shows of a uWSGI instance whose master does not answer its stats socket.

The master serves the stats socket, but its workers accept and serve requests
on their own: a SIGSTOPped (or hung) master leaves a site that still serves.
`status` must say so instead of "not running".
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from supervisor.uwsgi import procs

# /proc/PID/stat's state letters, in words (proc(5)).
STATE_NAMES = {
    "R": "running",
    "S": "sleeping",
    "D": "waiting on I/O",
    "T": "stopped",
    "t": "stopped by a debugger",
    "Z": "zombie",
    "I": "idle",
}
STOPPED = ("T", "t")


@dataclass(frozen=True)
class Proc:
    pid: int
    state: str  # a /proc/PID/stat state letter

    @property
    def stopped(self) -> bool:
        return self.state in STOPPED


@dataclass(frozen=True)
class SilentMaster:
    """A master alive in /proc but silent on its stats socket, and its workers."""

    master: Proc
    workers: tuple[Proc, ...]

    @property
    def serving(self) -> int:
        """Workers not stopped: they accept on the shared socket without their master."""
        return sum(1 for w in self.workers if not w.stopped)

    def describe(self, stats_path: Path) -> str:
        m = self.master
        state = f"state {m.state}: {STATE_NAMES.get(m.state, 'unknown')}"
        hint = f"; `kill -CONT {m.pid}` resumes it" if m.stopped else ""
        return (
            f"master not answering on {stats_path} (pid {m.pid}, {state}{hint}),"
            f" {self.serving} of {len(self.workers)} workers alive and not stopped"
            f"{' (they keep serving)' if self.serving else ''}"
        )

    def as_json(self) -> dict[str, Any]:
        return {
            "master_pid": self.master.pid,
            "master_state": self.master.state,
            "master_stopped": self.master.stopped,
            "workers": [{"pid": w.pid, "state": w.state} for w in self.workers],
            "workers_serving": self.serving,
        }


def proc_state(pid: int) -> Optional[str]:
    """The state letter of /proc/PID/stat, or None once the process is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()[0].decode()
    except (OSError, IndexError):
        return None


def look(runtime_dir: Path, master_pid: Optional[int]) -> Optional[SilentMaster]:
    """The instance's master (the one `master_pid` names, if it lives) and its
    workers as /proc shows them; None if no process of the instance lives."""
    pids = procs.instance_pids(runtime_dir)
    parents = {pid: procs.parent_pid(pid) for pid in pids}
    masters = [pid for pid in pids if parents[pid] not in parents]
    if master_pid not in masters:
        master_pid = masters[-1] if masters else None  # the newest: pids grow
    if master_pid is None:
        return None
    state = proc_state(master_pid)
    if state is None or state == "Z":
        return None
    workers = []
    for pid in pids:
        if parents[pid] == master_pid:
            worker_state = proc_state(pid)
            if worker_state is not None and worker_state != "Z":
                workers.append(Proc(pid, worker_state))
    return SilentMaster(Proc(master_pid, state), tuple(workers))
