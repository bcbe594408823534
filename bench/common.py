"""Shared pieces of the benchmarks: the app under test, probes through nginx, marked processes.

What tests share with them (waiting, HTTP, nginx, load, /proc) is in tests/kit.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, Optional

from tests.kit import net, procs

REPO = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent
UWSGI = str(VENV_BIN / "uwsgi")
# Every process a benchmark starts carries this variable (uWSGI workers inherit
# it), so leftovers are found in /proc even after their parent died.
MARK = "UWSGIBENCH_MARK"
PROCESSES = 4  # uWSGI workers, the same for every contender

APP_TEMPLATE = '''\
"""Benchmark app: a version marker route and a slow route."""
import os
import time
{slow}
from flask import Flask, request

VERSION = "v1"

app = Flask(__name__)


@app.route("/")
def index():
    return f"{{VERSION}} pid={{os.getpid()}}\\n"


@app.route("/slow")
def slow():
    time.sleep(float(request.args.get("s", "2")))
    return f"{{VERSION}} slow done\\n"
'''
SLOW_IMPORT = "time.sleep(0.3)  # an app whose import takes 0.3 s\n"
VARIANTS = {"fast": "", "slow-import": SLOW_IMPORT}


def scratch(prefix: str) -> Path:
    """A throwaway directory with a short path (unix sockets: 107 bytes)."""
    return Path(tempfile.mkdtemp(prefix=f"ub-{prefix}-", dir="/tmp"))


def make_app(dest: Path, variant: str = "fast") -> Path:
    """Write the benchmark app into `dest`; return its module file."""
    dest.mkdir(parents=True, exist_ok=True)
    path = dest / "app.py"
    path.write_text(APP_TEMPLATE.format(slow=VARIANTS[variant]))
    backdate(path)
    return path


def backdate(path: Path, seconds: float = 2.0) -> None:
    """Make a new file look older, so the first save in a benchmark changes its
    whole-second mtime (what touch-reload and py-autoreload compare)."""
    t = time.time() - seconds
    os.utime(path, (t, t))


def break_app(app_file: Path) -> None:
    """Push a syntax error."""
    app_file.write_text(app_file.read_text().replace("VERSION = ", "def broken(:\nVERSION = ", 1))


def make_tree(root: Path, files: int, per_dir: int = 100) -> list[Path]:
    """`files` small modules in directories of `per_dir` (inotify watches are per directory)."""
    paths = []
    for i in range(files):
        d = root / "pkg" / f"d{i // per_dir:04d}"
        if i % per_dir == 0:
            d.mkdir(parents=True, exist_ok=True)
        p = d / f"m{i % per_dir:03d}.py"
        p.write_text(f"N = {i}\n")
        paths.append(p)
    return paths


def serves(port: int, version: str) -> bool:
    """True when 2 x PROCESSES requests in a row get `version`: every worker has it."""
    return net.serves(port, version, times=2 * PROCESSES, timeout=10.0)


def first_response(
    port: int, accept: Callable[[int, str], bool], timeout: float
) -> Optional[float]:
    """Poll through nginx in a tight loop; monotonic time of the first accepted response."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = net.try_get(f"{net.LOOPBACK}:{port}", timeout=timeout)
        if got is not None and accept(*got):
            return time.monotonic()
    return None


def response_pid(body: str) -> int:
    try:
        return int(body.split("pid=", 1)[1].split()[0])
    except (IndexError, ValueError):
        return 0


# -- processes a benchmark started --------------------------------------------


def marked_pids(mark: str, uwsgi_only: bool = True) -> list[int]:
    """Live processes carrying MARK=mark in their environment (uWSGI's only, by default)."""
    needle = f"\0{MARK}={mark}\0".encode()
    me = os.getpid()
    found = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit() or int(entry.name) == me:
            continue
        try:
            with open(f"/proc/{entry.name}/environ", "rb") as f:
                env = b"\0" + f.read()
            with open(f"/proc/{entry.name}/cmdline", "rb") as f:
                argv0 = f.read().split(b"\0", 1)[0]
        except OSError:
            continue
        if needle not in env or (uwsgi_only and not argv0.endswith(b"uwsgi")):
            continue
        if procs.alive(int(entry.name)):
            found.append(int(entry.name))
    return sorted(found)


def remove(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
