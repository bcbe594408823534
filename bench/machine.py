"""The machine and the versions a run was made on."""

from __future__ import annotations

import os
import platform
import re
import subprocess
from pathlib import Path
from typing import Any

from bench.alternatives import SUPERVISORD_VENV
from bench.common import UWSGI
from tests.kit.nginx import NGINX


def _out(argv: list[str]) -> str:
    try:
        r = subprocess.run(argv, capture_output=True, text=True, timeout=20, check=False)
    except OSError:
        return "missing"
    return (r.stdout + r.stderr).strip()


def _cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def _mem_gib() -> float:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) / 1024 / 1024
    return 0.0


def collect() -> dict[str, Any]:
    from importlib.metadata import version

    wrk = re.search(r"wrk (\S+)", _out(["wrk", "-v"]))
    nginx = re.search(r"nginx/(\S+)", _out([str(NGINX), "-v"]))
    return {
        "machine": {
            "nproc": os.cpu_count(),
            "ram_gib": round(_mem_gib(), 1),
            "kernel": platform.release(),
            "cpu": _cpu_model(),
            "max_user_watches": int(Path("/proc/sys/fs/inotify/max_user_watches").read_text()),
        },
        "versions": {
            "uWSGI": _out([UWSGI, "--version"]),
            "nginx": nginx.group(1) if nginx else "missing",
            "wrk": wrk.group(1) if wrk else "missing",
            "supervisord": _out([str(SUPERVISORD_VENV / "bin" / "supervisord"), "--version"]),
            "Python": platform.python_version(),
            "Flask": version("flask"),
            "watchdog": version("watchdog"),
            "uwsgi-supervisor": version("uwsgi-supervisor"),
        },
    }
