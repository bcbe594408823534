"""The peers: plain uWSGI (py-autoreload, touch-reload, inotify + `r`), supervisord, a shell loop.

Each runs uWSGI with the options the supervisor gives it (master, need-app,
master FIFO, stats, the same workers and socket kind), under a session of its
own; `close()` ends what it started by PID or by that session's group, then
any marked leftovers.
"""

from __future__ import annotations

import os
import shlex
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Optional

from bench.common import MARK, PROCESSES, REPO, UWSGI, backdate, marked_pids
from tests.kit.procs import children, kill_pids

SUPERVISORD_VENV = Path(
    os.environ.get("BENCH_SUPERVISORD_VENV", REPO / "bench" / "out" / "supervisord-venv")
)
WATCHER = Path(__file__).with_name("inotify_reload.py")


def uwsgi_argv(
    tmp: Path,
    app_dir: Path,
    extra: tuple[str, ...] = (),
    processes: int = PROCESSES,
    app_socket: str = "",
) -> list[str]:
    """uWSGI's command line; `app_socket` is 127.0.0.1:PORT or a path (default tmp/app.sock)."""
    return [
        UWSGI,
        "--strict",
        "--master",
        "--need-app",
        "--master-fifo",
        str(tmp / "master.fifo"),
        "--stats",
        str(tmp / "stats.sock"),
        "--stats-no-cores",
        "--memory-report",
        "--buffer-size",
        "32768",
        "--chdir",
        str(app_dir),
        "--pythonpath",
        str(app_dir),
        "--processes",
        str(processes),
        "--socket",
        app_socket or str(tmp / "app.sock"),
        "--module",
        "app:app",
        "--logto",
        str(tmp / "uwsgi.log"),
        *extra,
    ]


def plain_include(app_socket: str) -> str:
    """What a user of plain uWSGI writes: the same locations the supervisor renders."""
    upstream = app_socket if _is_tcp(app_socket) else f"unix:{app_socket}"
    return (
        "location / {\n    include uwsgi_params;\n"
        f"    uwsgi_pass {upstream};\n    uwsgi_next_upstream error;\n}}\n"
    )


def _is_tcp(app_socket: str) -> bool:
    return not app_socket.startswith("/")


def listening(app_socket: str) -> bool:
    """True once something accepts connections at `app_socket` (a path or host:port)."""
    if not _is_tcp(app_socket):
        return os.path.exists(app_socket)
    host, _, port = app_socket.rpartition(":")
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex((host, int(port))) == 0


def _env(mark: str) -> dict[str, str]:
    env = dict(os.environ)
    env[MARK] = mark
    # PYTHONPATH would let our own `supervisor` package shadow supervisord's.
    for name in ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID", "PYTHONPATH"):
        env.pop(name, None)
    return env


def _end_group(proc: Optional[subprocess.Popen[bytes]], first: int = signal.SIGINT) -> None:
    """End a session we started: `first` to its leader, then SIGKILL to its group."""
    if proc is None:
        return
    if proc.poll() is None:
        proc.send_signal(first)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    proc.wait()


class PlainUwsgi:
    """uWSGI alone; `mode` is how code pushes reach it."""

    MODES = ("py-autoreload", "touch-reload", "inotify+r", "none")

    def __init__(
        self,
        tmp: Path,
        app_dir: Path,
        mode: str,
        processes: int = PROCESSES,
        app_socket: str = "",
    ) -> None:
        assert mode in self.MODES
        self.label = mode if mode != "none" else "uWSGI alone"
        self.tmp, self.app_dir, self.mode = tmp, app_dir, mode
        self.app_socket = app_socket or str(tmp / "app.sock")
        self.mark = str(tmp)
        self.touch_file = tmp / "reload.touch"
        extra: tuple[str, ...] = ()
        if mode == "py-autoreload":
            extra = ("--py-autoreload", "1")
        elif mode == "touch-reload":
            self.touch_file.touch()
            backdate(self.touch_file)
            extra = ("--touch-reload", str(self.touch_file))
        self.argv = uwsgi_argv(tmp, app_dir, extra, processes, self.app_socket)
        self.proc: Optional[subprocess.Popen[bytes]] = None
        self.watcher: Optional[subprocess.Popen[bytes]] = None

    def include(self) -> str:
        return plain_include(self.app_socket)

    def start(self) -> None:
        with open(self.tmp / "uwsgi.out", "ab") as out:
            self.proc = subprocess.Popen(
                self.argv,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=_env(self.mark),
                start_new_session=True,
            )
        if self.mode == "inotify+r":
            self.watcher = subprocess.Popen(
                [sys.executable, str(WATCHER), str(self.app_dir), str(self.tmp / "master.fifo")],
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
            assert self.watcher.stdout is not None
            if self.watcher.stdout.readline().strip() != b"armed":
                raise RuntimeError("the inotify watcher did not start")

    def ready(self) -> bool:
        return listening(self.app_socket)

    def busy(self) -> bool:
        return False

    def after_save(self) -> None:
        if self.mode == "touch-reload":
            self.touch_file.touch()  # as users do after a deploy

    def master_pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid  # a graceful reload re-execs in place: same PID

    def close(self) -> None:
        if self.watcher is not None:
            _end_group(self.watcher, signal.SIGTERM)
        _end_group(self.proc)  # SIGINT: uWSGI 2.0's "kill" (SIGTERM would reload)
        kill_pids(marked_pids(self.mark))


class Supervisord:
    """supervisord with one [program] running the same uWSGI command, autorestart=true."""

    label = "supervisord"

    def __init__(
        self,
        tmp: Path,
        app_dir: Path,
        stopwaitsecs: Optional[int] = None,
        processes: int = PROCESSES,
    ) -> None:
        self.tmp, self.app_dir = tmp, app_dir
        self.mark = str(tmp)
        self.conf = tmp / "supervisord.conf"
        argv = uwsgi_argv(tmp, app_dir, (), processes)
        stopwait = f"stopwaitsecs={stopwaitsecs}\n" if stopwaitsecs is not None else ""
        self.conf.write_text(
            f"[unix_http_server]\nfile={tmp}/supervisor.sock\n\n"
            f"[supervisord]\nnodaemon=true\nlogfile={tmp}/supervisord.log\n"
            f"pidfile={tmp}/supervisord.pid\nchildlogdir={tmp}\n\n"
            "[rpcinterface:supervisor]\n"
            "supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface\n\n"
            f"[supervisorctl]\nserverurl=unix://{tmp}/supervisor.sock\n\n"
            f"[program:app]\ncommand={shlex.join(argv)}\nautorestart=true\n{stopwait}"
            f"redirect_stderr=true\nstdout_logfile={tmp}/uwsgi.out\n"
        )
        self.proc: Optional[subprocess.Popen[bytes]] = None

    @staticmethod
    def available() -> bool:
        return (SUPERVISORD_VENV / "bin" / "supervisord").exists()

    def include(self) -> str:
        return plain_include(str(self.tmp / "app.sock"))

    def start(self) -> None:
        with open(self.tmp / "supervisord.out", "ab") as out:
            self.proc = subprocess.Popen(
                [str(SUPERVISORD_VENV / "bin" / "supervisord"), "-n", "-c", str(self.conf)],
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=_env(self.mark),
                start_new_session=True,
                cwd=self.tmp,
            )

    def ctl(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(SUPERVISORD_VENV / "bin" / "supervisorctl"), "-c", str(self.conf), *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            env=_env(self.mark),
            cwd=self.tmp,
        )

    def ready(self) -> bool:
        return (self.tmp / "app.sock").exists()

    def busy(self) -> bool:
        return False

    def after_save(self) -> None:
        pass

    def master_pid(self) -> int:
        assert self.proc is not None
        kids = [p for p in children(self.proc.pid) if p in marked_pids(self.mark)]
        if len(kids) != 1:
            raise RuntimeError(f"supervisord has {len(kids)} uWSGI children")
        return kids[0]

    def control_pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def stop(self) -> subprocess.CompletedProcess[str]:
        """supervisord's default stop: SIGTERM, SIGKILL after stopwaitsecs."""
        return self.ctl("stop", "app")

    def restart(self) -> None:
        """Restart supervisord itself, as a package upgrade does (`systemctl restart
        supervisor`): SIGTERM, which stops the program first (SIGTERM, SIGKILL after
        stopwaitsecs), then start it again; it starts the program."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(120)
        self.start()

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()  # its uWSGI is in another group: found by mark below
            self.proc.wait()
        kill_pids(marked_pids(self.mark))


class ShellLoop:
    """`while true; do uwsgi ...; done` (bounded here to 1000 starts)."""

    label = "shell loop"

    def __init__(self, tmp: Path, app_dir: Path, processes: int = PROCESSES) -> None:
        self.tmp, self.app_dir = tmp, app_dir
        self.mark = str(tmp)
        self.argv = uwsgi_argv(tmp, app_dir, (), processes)
        self.proc: Optional[subprocess.Popen[bytes]] = None

    def include(self) -> str:
        return plain_include(str(self.tmp / "app.sock"))

    def start(self) -> None:
        script = 'for i in $(seq 1000); do "$@"; done'
        with open(self.tmp / "uwsgi.out", "ab") as out:
            self.proc = subprocess.Popen(
                ["sh", "-c", script, "sh", *self.argv],
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=_env(self.mark),
                start_new_session=True,
            )

    def ready(self) -> bool:
        return (self.tmp / "app.sock").exists()

    def busy(self) -> bool:
        return False

    def after_save(self) -> None:
        pass

    def master_pid(self) -> int:
        assert self.proc is not None
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            kids = [p for p in children(self.proc.pid) if p in marked_pids(self.mark)]
            if len(kids) == 1:
                return kids[0]
            time.sleep(0.02)
        raise RuntimeError("the shell loop has no uWSGI child")

    def restart(self) -> None:
        """Stop the loop as a user at its terminal does (Ctrl-C: SIGINT to the
        group, which uWSGI takes as "stop now"), then start it again."""
        assert self.proc is not None
        os.killpg(self.proc.pid, signal.SIGINT)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        self.start()

    def close(self) -> None:
        _end_group(self.proc, signal.SIGKILL)
        kill_pids(marked_pids(self.mark))
