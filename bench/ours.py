"""uwsgi-supervisor itself, as a contender: `uwsgi-supervisor run SPEC` under its own session."""

from __future__ import annotations

import json
import os
import signal
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
runtime_dir: {rt}
watch:
  reload: {mode}
"""


class Ours:
    """One supervisor with its uWSGI; every process it leaves is found by mark and killed."""

    def __init__(
        self, tmp: Path, app_dir: Path, mode: str = "graceful", processes: int = PROCESSES
    ) -> None:
        self.label = f"ours: {mode}"
        self.tmp, self.app_dir, self.mode = tmp, app_dir, mode
        self.rt = tmp / "rt"
        self.spec = tmp / "app.yaml"
        self.spec.write_text(SPEC.format(app=app_dir, processes=processes, rt=self.rt, mode=mode))
        self.logfile = tmp / "supervisor.log"
        self.mark = str(tmp)
        self.proc: Optional[subprocess.Popen[bytes]] = None
        self.spawned_at = 0.0

    def include(self) -> str:
        from supervisor.render import render_nginx
        from supervisor.spec.load import load_spec

        return render_nginx(load_spec(self.spec))

    def start(self) -> None:
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        env[MARK] = self.mark
        for name in ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID", "JOURNAL_STREAM"):
            env.pop(name, None)
        with open(self.logfile, "ab") as out:
            self.spawned_at = time.monotonic()
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "supervisor", "run", str(self.spec)],
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=self.tmp,
                env=env,
                start_new_session=True,
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

    def close(self) -> None:
        """End it fast (nothing is measured here; scenario 7 measures the real stop)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        kill_pids(marked_pids(self.mark))
