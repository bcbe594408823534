"""Run the real supervisor (and so real uWSGI) from tests.

`Supervised` starts `uwsgi-supervisor run SPEC` as a subprocess with a real
NOTIFY_SOCKET datagram socket bound by the test, and cleans up every process
it started, by PID, however the test ends.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Optional

from kit.wait import wait_until

from supervisor.uwsgi import procs

REPO = Path(__file__).resolve().parent.parent
APPS = REPO / "tests" / "apps"
VENV_BIN = Path(sys.executable).parent
SUPERVISOR = [sys.executable, "-m", "supervisor"]


def copy_app(name: str, dest: Path) -> Path:
    shutil.copytree(APPS / name, dest, ignore=shutil.ignore_patterns("__pycache__"))
    return dest


class NotifySocket:
    """A NOTIFY_SOCKET bound by the test, as systemd would."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.setblocking(False)
        self.received: list[tuple[float, dict[str, str]]] = []

    def poll(self) -> list[dict[str, str]]:
        while True:
            try:
                data = self.sock.recv(65536)
            except BlockingIOError:
                break
            fields = dict(line.split("=", 1) for line in data.decode().splitlines() if "=" in line)
            self.received.append((time.monotonic(), fields))
        return [f for _, f in self.received]

    def keys(self, ignore: tuple[str, ...] = ("STATUS", "WATCHDOG")) -> list[str]:
        """The sequence of messages, STATUS-only and WATCHDOG pings left out."""
        seq = []
        for fields in self.poll():
            names = [k for k in fields if k not in ignore and k != "MONOTONIC_USEC"]
            if names:
                seq.append("+".join(names))
        return seq

    def count(self, key: str) -> int:
        return sum(1 for f in self.poll() if key in f)

    def wait_for(self, key: str, count: int = 1, timeout: float = 30.0) -> None:
        wait_until(
            lambda: self.count(key) >= count,
            timeout,
            f"{count} x {key} on NOTIFY_SOCKET (got {self.keys()})",
        )

    def close(self) -> None:
        self.sock.close()
        try:
            self.path.unlink()
        except FileNotFoundError:
            pass


def spec_yaml(
    app_dir: Path, runtime_dir: Path, module: str, http_port: int, extra: str = ""
) -> str:
    return (
        f'app:\n  module: "{module}"\n  chdir: {app_dir}\n'
        f"uwsgi:\n  processes: 2\n  http: 127.0.0.1:{http_port}\n"
        f"runtime_dir: {runtime_dir}\n" + extra
    )


class Supervised:
    """One `uwsgi-supervisor run` under test."""

    count = 0

    def __init__(
        self, tmp: Path, spec_text: str, name: str = "app", env: Optional[dict[str, str]] = None
    ) -> None:
        self.tmp = tmp
        self.spec = tmp / f"{name}.yaml"
        self.spec.write_text(spec_text)
        self.runtime_dir = Path(_runtime_dir(spec_text))
        Supervised.count += 1
        self.notify = NotifySocket(tmp / f"notify-{Supervised.count}.sock")
        self.logfile = tmp / f"{name}.log"
        self.env = dict(os.environ, NOTIFY_SOCKET=str(self.notify.path), PYTHONUNBUFFERED="1")
        # As systemd's StateDirectory= would: the event history, one per supervisor.
        self.state_dir = tmp / f"state-{name}"
        self.env["STATE_DIRECTORY"] = str(self.state_dir)
        self.env.pop("JOURNAL_STREAM", None)
        self.env.update(env or {})
        self.proc: Optional[subprocess.Popen[bytes]] = None

    def start(self, wait_ready: bool = True, timeout: float = 60.0) -> Supervised:
        with open(self.logfile, "ab") as out:
            self.proc = subprocess.Popen(
                [*SUPERVISOR, "run", str(self.spec)],
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=self.tmp,
            )
        if wait_ready:
            proc = self.proc
            wait_until(
                lambda: self.notify.count("READY") > 0
                or (proc.poll() is not None and self._exited_before_ready()),
                timeout,
                f"READY on NOTIFY_SOCKET (got {self.notify.keys()})",
            )
        return self

    def _exited_before_ready(self) -> bool:
        assert self.proc is not None
        tail = "\n".join(self.log().splitlines()[-20:])
        raise AssertionError(
            f"the supervisor exited with {self.proc.returncode} before READY; its log ends:\n{tail}"
        )

    def log(self) -> str:
        return self.logfile.read_text(errors="replace")

    def state(self) -> dict[str, Any]:
        try:
            return dict(json.loads((self.runtime_dir / "state.json").read_text()))
        except (OSError, ValueError):
            return {}

    def wait_state(self, state: str, timeout: float = 30.0) -> dict[str, Any]:
        return dict(
            wait_until(
                lambda: self.state() if self.state().get("state") == state else None,
                timeout,
                f"supervisor state {state} (now {self.state().get('state')});"
                f" log:\n{self.log()[-3000:]}",
            )
        )

    def uwsgi_pid(self) -> int:
        return int(self.state()["uwsgi_pid"])

    def cli(self, *args: str, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*SUPERVISOR, *args], capture_output=True, text=True, timeout=timeout, env=self.env
        )

    def signal(self, sig: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def wait_exit(self, timeout: float = 60.0) -> int:
        assert self.proc is not None
        return self.proc.wait(timeout=timeout)

    def close(self) -> None:
        """End everything this test started: the supervisor, then any uWSGI it left."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=40)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        procs.kill_leftovers(self.runtime_dir)
        self.notify.close()
        # A bug of ours ends the supervisor with "internal error" (exit 70), also
        # when it only happens while a test winds down: never let that pass.
        if self.logfile.exists() and "internal error, exiting" in self.log():
            tail = self.log()[self.log().index("internal error, exiting") :][:3000]
            raise AssertionError(f"the supervisor hit an internal error:\n{tail}")

    def __enter__(self) -> Supervised:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _runtime_dir(spec_text: str) -> str:
    for line in spec_text.splitlines():
        if line.startswith("runtime_dir:"):
            return line.split(":", 1)[1].strip()
    raise ValueError("test specs must set runtime_dir")
