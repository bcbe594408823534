"""Import-check new code in a separate process before reloading uWSGI onto it.

A graceful reload onto code that fails to import takes the site down, and a
chain reload onto it never completes; so the supervisor first imports the app
exactly as uWSGI would (same interpreter, environment, chdir and entry shim)
and reloads only if that works. Runs without blocking the loop: start(), then
poll() from the loop until it returns a result.
"""

from __future__ import annotations

import os
import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from supervisor.spec.model import Spec, runtime_paths
from supervisor.uwsgi.command import INSTANCE_MARK, build_env
from supervisor.uwsgi.failures import summarize_failure
from supervisor.uwsgi.private import open_private, read_private
from supervisor.uwsgi.runtime import drop_privileges

CHECK_CODE = """\
import runpy, sys
sys.path.insert(0, {chdir!r})
ns = runpy.run_path({entry!r}, run_name="uwsgi_supervisor_preflight")
app = ns.get("application")
if not callable(app):
    raise SystemExit("the entry point did not produce a callable WSGI app (got %r)" % (app,))
"""


@dataclass(frozen=True)
class PreflightResult:
    ok: bool
    summary: str  # "SyntaxError in blog.py line 12: invalid syntax"
    output: str  # the full traceback, for the log
    seconds: float


def interpreter(spec: Spec) -> str:
    """The Python uWSGI embeds: the app's virtualenv, else the one beside uWSGI."""
    if spec.app.virtualenv is not None:
        return str(spec.app.virtualenv / "bin" / "python")
    beside = Path(spec.uwsgi.binary).parent / "python"
    if beside.exists():
        return str(beside)
    import sys

    return sys.executable


class Preflight:
    """One import check at a time, in its own process and session."""

    def __init__(self) -> None:
        self.proc: Optional[subprocess.Popen[bytes]] = None
        self.spec: Optional[Spec] = None  # the spec the running check was started with
        self.started = 0.0
        self.deadline = 0.0

    def start(self, now: float, spec: Spec) -> None:
        env = build_env(spec)
        env.pop(INSTANCE_MARK, None)  # not part of any uWSGI instance
        env["PYTHONDONTWRITEBYTECODE"] = "1"  # leave no .pyc behind in the release
        paths = runtime_paths(spec)
        code = CHECK_CODE.format(chdir=str(spec.app.chdir), entry=str(paths.entry))
        # Private: an app may print secrets (a DSN, a token) while it imports.
        # A symlink planted there is replaced, never written through.
        fd = open_private(paths.preflight_output, os.O_WRONLY | os.O_TRUNC)
        with os.fdopen(fd, "wb") as out:
            self.proc = subprocess.Popen(
                [interpreter(spec), "-c", code],
                cwd=str(spec.app.chdir),
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                **drop_privileges(spec),  # import as uWSGI would: the service user
            )
        self.spec = spec
        self.started = now
        self.deadline = now + spec.watch.preflight_timeout

    @property
    def running(self) -> bool:
        return self.proc is not None

    def poll(self, now: float) -> Optional[PreflightResult]:
        """The result once the check ended or timed out; None while it runs."""
        if self.proc is None or self.spec is None:
            return None
        spec = self.spec
        code = self.proc.poll()
        if code is None and now < self.deadline:
            return None
        timed_out = code is None
        if timed_out:
            self._kill()
        self.proc = None
        try:
            output = read_private(runtime_paths(spec).preflight_output).decode(errors="replace")
        except OSError:
            output = ""
        seconds = now - self.started
        if timed_out:
            took = f"import check took longer than {spec.watch.preflight_timeout:g}s"
            return PreflightResult(False, took, output, seconds)
        if code == 0:
            return PreflightResult(True, "", output, seconds)
        summary = summarize_failure(output.splitlines(), spec.app.chdir) or "import check failed"
        return PreflightResult(False, summary, output, seconds)

    def cancel(self) -> None:
        if self.proc is not None:
            self._kill()
            self.proc = None

    def _kill(self) -> None:
        """End the check and anything it started (its own session)."""
        assert self.proc is not None
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait()
