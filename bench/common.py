"""Shared pieces of the benchmarks: the app under test, HTTP probes, /proc readings."""

from __future__ import annotations

import http.client
import os
import shutil
import signal
import socket
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

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


def set_version(app_file: Path, version: str) -> None:
    """Save the app with a new version marker, in place, as an editor does."""
    text = app_file.read_text()
    start = text.index('VERSION = "') + len('VERSION = "')
    end = text.index('"', start)
    app_file.write_text(text[:start] + version + text[end:])


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


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def get(port: int, path: str = "/", timeout: float = 10.0) -> Optional[tuple[int, str]]:
    """One GET through nginx on 127.0.0.1; None on a socket error."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        return resp.status, resp.read().decode(errors="replace")
    except (OSError, http.client.HTTPException):
        return None
    finally:
        conn.close()


def serves(port: int, version: str, times: int = 8) -> bool:
    """True when `times` requests in a row get `version` (every worker has it)."""
    for _ in range(times):
        got = get(port)
        if got is None or got[0] != 200 or not got[1].startswith(version + " "):
            return False
    return True


def wait_until(
    predicate: Callable[[], Any], timeout: float, what: str, interval: float = 0.02
) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(interval)


def first_response(
    port: int, accept: Callable[[int, str], bool], timeout: float
) -> Optional[float]:
    """Poll through nginx in a tight loop; monotonic time of the first accepted response."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = get(port, timeout=timeout)
        if got is not None and accept(*got):
            return time.monotonic()
    return None


def response_pid(body: str) -> int:
    try:
        return int(body.split("pid=", 1)[1].split()[0])
    except (IndexError, ValueError):
        return 0


# -- /proc -------------------------------------------------------------------

CLK_TCK = os.sysconf("SC_CLK_TCK")


def _stat_fields(pid: int) -> list[bytes]:
    with open(f"/proc/{pid}/stat", "rb") as f:
        return f.read().rsplit(b")", 1)[1].split()


def alive(pid: int) -> bool:
    try:
        return _stat_fields(pid)[0] != b"Z"
    except (OSError, IndexError):
        return False


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of one process so far."""
    try:
        f = _stat_fields(pid)
        return (int(f[11]) + int(f[12])) / CLK_TCK
    except (OSError, IndexError, ValueError):
        return 0.0


def rss_mib(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def children(pid: int) -> list[int]:
    found = []
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                if int(_stat_fields(int(entry.name))[1]) == pid:
                    found.append(int(entry.name))
            except (OSError, IndexError, ValueError):
                continue
    return found


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
        if alive(int(entry.name)):
            found.append(int(entry.name))
    return sorted(found)


def kill_pids(pids: list[int], wait: float = 5.0) -> None:
    """SIGKILL these processes (ours, found by mark or recorded) and wait for them."""
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + wait
    while any(alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.02)


def remove(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


# -- light load ----------------------------------------------------------------


@dataclass
class Sample:
    start: float
    end: float
    ok: bool


@dataclass
class LightLoad:
    """A few threads sending GETs through nginx, each result timestamped; bounded in time."""

    port: int
    threads: int = 2
    pause: float = 0.01
    limit: float = 120.0
    samples: list[Sample] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._workers = [
            threading.Thread(target=self._run, daemon=True) for _ in range(self.threads)
        ]

    def __enter__(self) -> LightLoad:
        for t in self._workers:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for t in self._workers:
            t.join(30)

    def _run(self) -> None:
        deadline = time.monotonic() + self.limit
        while not self._stop.is_set() and time.monotonic() < deadline:
            start = time.monotonic()
            got = get(self.port, timeout=30)
            ok = got is not None and got[0] == 200
            with self._lock:
                self.samples.append(Sample(start, time.monotonic(), ok))
            time.sleep(self.pause)

    def failed_between(self, t0: float, t1: float) -> int:
        with self._lock:
            return sum(1 for s in self.samples if not s.ok and s.end >= t0 and s.start <= t1)

    def count_between(self, t0: float, t1: float) -> int:
        with self._lock:
            return sum(1 for s in self.samples if s.end >= t0 and s.start <= t1)
