"""Human status lines and the state file the CLI reads."""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any, Optional

from supervisor.lifecycle.machine import Machine
from supervisor.lifecycle.states import State


def ago(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.0f} s ago"
    if seconds < 3600:
        return f"{seconds / 60:.0f} min ago"
    if seconds < 86400:
        return f"{seconds / 3600:.1f} h ago"
    return f"{seconds / 86400:.1f} days ago"


def status_line(m: Machine, now: float, error: Optional[str], refused: Optional[str]) -> str:
    """One line a person reads in `systemctl status` (sent as STATUS=)."""
    stats = m.last_stats
    total = m.spec.uwsgi.processes
    serving = stats.serving_workers if stats else 0
    if m.state is State.RUNNING:
        line = f"serving: {serving}/{total} workers"
        if stats is not None:
            line += f", {stats.requests} requests"
        line += f", generation {m.generation}"
        if m.last_reload is not None:
            at, reason = m.last_reload
            line += f", last reload {ago(time.time() - at)} ({reason})"
    elif m.state is State.STARTING:
        line = f"starting: {serving}/{total} workers serving"
    elif m.state is State.RELOADING and m.reload is not None:
        fresh = (
            sum(1 for w in stats.workers if w.pid not in m.old_pids and w.serving) if stats else 0
        )
        line = (
            f"reloading ({m.reload.mode}): {fresh}/{total} workers on new code ({m.reload.reason})"
        )
    elif m.state is State.BACKOFF:
        wait = max(0.0, (m.deadline or now) - now)
        line = f"backoff: crash {m.crashes}, retrying in {wait:.1f} s"
        if error:
            line += f": {error}"
    elif m.state is State.STOPPING:
        line = "stopping: waiting for uWSGI to finish in-flight requests"
    elif m.state is State.FATAL:
        line = f"gave up after {m.crashes - 1} restarts"
        if error:
            line += f": {error}"
    else:
        line = m.state.value
    if refused and m.state in (State.RUNNING, State.RELOADING):
        line += f"; {refused}"
    return line


def write_state(path: Path, doc: dict[str, Any]) -> None:
    """Replace the state file atomically (readers never see half a document)."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".state-")
    with os.fdopen(fd, "w") as f:
        json.dump(doc, f, indent=1, sort_keys=True)
    os.replace(tmp, path)


def read_state(path: Path) -> Optional[dict[str, Any]]:
    try:
        with open(path) as f:
            doc = json.load(f)
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) else None
