"""uwsgi-supervisor itself, as a contender: `uwsgi-supervisor run SPEC` under its own session.

`OursSocketUnit` is the same supervisor started as systemd starts it with a
socket unit: the benchmark process holds the app socket and hands it to each
`uwsgi-supervisor run` it starts (fd 3, LISTEN_FDS, LISTEN_PID).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Optional

from bench.common import MARK, PROCESSES, marked_pids
from tests.kit.procs import kill_pids

SPEC = """\
app:
  module: "app:app"
  chdir: {app}
uwsgi:
  processes: {processes}
{socket}runtime_dir: {rt}
watch:
  reload: {mode}
"""


class Ours:
    """One supervisor with its uWSGI; every process it leaves is found by mark and killed."""

    def __init__(
        self,
        tmp: Path,
        app_dir: Path,
        mode: str = "graceful",
        processes: int = PROCESSES,
        app_socket: str = "",
    ) -> None:
        """`app_socket`: the spec's `uwsgi.socket`, a path or 127.0.0.1:PORT ("": the default)."""
        self.label = f"ours: {mode}"
        self.tmp, self.app_dir, self.mode = tmp, app_dir, mode
        self.rt = tmp / "rt"
        self.spec = tmp / "app.yaml"
        self.spec.write_text(
            SPEC.format(
                app=app_dir,
                processes=processes,
                socket=f"  socket: {app_socket}\n" if app_socket else "",
                rt=self.rt,
                mode=mode,
            )
        )
        # Not beside the app dir, whose parent the supervisor watches (a tree
        # deleted and recreated): in production this output goes to the journal.
        (tmp / "logs").mkdir(exist_ok=True)
        self.logfile = tmp / "logs" / "supervisor.log"
        self.mark = str(tmp)
        self.proc: Optional[subprocess.Popen[bytes]] = None
        self.spawned_at = 0.0

    def include(self) -> str:
        from supervisor.render import render_nginx
        from supervisor.spec.load import load_spec

        return render_nginx(load_spec(self.spec))

    def start(self) -> None:
        self._spawn([sys.executable, "-m", "supervisor", "run", str(self.spec)])

    def _spawn(self, argv: list[str], pass_fds: tuple[int, ...] = ()) -> None:
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        env[MARK] = self.mark
        env["STATE_DIRECTORY"] = str(self.tmp / "state")  # the event history: not /var/lib
        for name in ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID", "JOURNAL_STREAM"):
            env.pop(name, None)
        with open(self.logfile, "ab") as out:
            self.spawned_at = time.monotonic()
            self.proc = subprocess.Popen(
                argv,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=self.tmp,
                env=env,
                start_new_session=True,
                pass_fds=pass_fds,
            )

    def state(self) -> dict[str, Any]:
        try:
            return dict(json.loads((self.rt / "state.json").read_text()))
        except (OSError, ValueError):
            return {}

    def ready(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            raise RuntimeError(f"supervisor exited {self.proc.returncode}:\n{self.log()[-3000:]}")
        return self.state().get("state") == "running"

    def busy(self) -> bool:
        """True while a reload is under way (an edit now would be batched with it)."""
        return self.state().get("state") != "running"

    def after_save(self) -> None:
        """Nothing to do: the watcher sees the save."""

    def master_pid(self) -> int:
        return int(self.state()["uwsgi_pid"])

    def control_pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def log(self) -> str:
        try:
            return self.logfile.read_text(errors="replace")
        except OSError:
            return ""

    def reloads(self) -> int:
        return sum(1 for line in self.log().splitlines() if "running -> reloading" in line)

    def stop(self) -> None:
        """What systemd does: SIGTERM to the supervisor."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)

    def restart(self) -> None:
        """Restart the supervisor itself: SIGTERM (as systemd's stop), wait, start again."""
        assert self.proc is not None
        self.stop()
        self.proc.wait(120)
        self.start()

    def close(self) -> None:
        """End it fast (nothing is measured here; scenario 7 measures the real stop)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        kill_pids(marked_pids(self.mark))


# Stands in for systemd: fd 3 is the socket, and LISTEN_PID names the process
# that execs the supervisor (the pid survives the exec), as in tests/test_listeners.py.
LAUNCH = """\
import os, sys
fd = int(sys.argv[1])
if fd != 3:
    os.dup2(fd, 3)
    os.close(fd)
os.environ["LISTEN_PID"] = str(os.getpid())
os.environ["LISTEN_FDS"] = "1"
os.execv(sys.executable, [sys.executable, "-m", "supervisor", "run", sys.argv[2]])
"""


class OursSocketUnit(Ours):
    """Ours with a socket unit, stood in for by the benchmark process.

    It binds the app socket once, outside the runtime dir (as the socket
    unit's path must be), and passes it to every supervisor it starts, as
    systemd passes a `.socket` unit's socket to each start of the service.
    """

    def __init__(self, tmp: Path, app_dir: Path, mode: str = "graceful") -> None:
        path = tmp / "app.sock"
        super().__init__(tmp, app_dir, mode, app_socket=str(path))
        self.label = "ours + socket unit"
        self.held = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.held.bind(str(path))
        os.chmod(path, 0o660)
        self.held.listen(socket.SOMAXCONN)  # systemd's default Backlog=

    def start(self) -> None:
        fd = self.held.fileno()
        self._spawn([sys.executable, "-c", LAUNCH, str(fd), str(self.spec)], pass_fds=(fd,))

    def close(self) -> None:
        super().close()
        self.held.close()
