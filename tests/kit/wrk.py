"""Run wrk against nginx and read its summary (through wrk_report.lua)."""

from __future__ import annotations

import json
import signal
import subprocess
from pathlib import Path
from typing import Any

LUA = Path(__file__).with_name("wrk_report.lua")


def start(
    port: int, duration: int, threads: int = 2, connections: int = 32
) -> subprocess.Popen[str]:
    """wrk for `duration` seconds on 127.0.0.1:port (nginx: it keeps connections alive)."""
    # A long timeout: a request stalled by a reload is a latency, not an error.
    argv = [
        "wrk",
        f"-t{threads}",
        f"-c{connections}",
        f"-d{int(duration)}s",
        "--timeout",
        "30s",
        "-s",
        str(LUA),
        f"http://127.0.0.1:{port}/",
    ]
    return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def stop(proc: subprocess.Popen[str], timeout: float = 60) -> dict[str, Any]:
    """End wrk now (SIGINT: it stops its connections and prints its summary) and read it.

    For a test whose load only has to last until what it watches is over: `duration`
    in start() is then the bound, not the length of the run."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
    return finish(proc, timeout)


def finish(proc: subprocess.Popen[str], timeout: float) -> dict[str, Any]:
    out, _ = proc.communicate(timeout=timeout)
    for line in reversed(out.splitlines()):
        if line.startswith("{"):
            r = dict(json.loads(line))
            r["socket_errors"] = r["connect"] + r["read"] + r["write"] + r["timeout"]
            r["failed"] = r["socket_errors"] + r["non2xx"]
            return r
    raise RuntimeError(f"wrk printed no summary:\n{out}")
