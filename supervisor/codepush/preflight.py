"""Import-check new code in a separate process before reloading uWSGI onto it.

A graceful reload onto code that fails to import takes the site down, and a
chain reload onto it never completes; so the supervisor first imports the app
exactly as uWSGI would (same interpreter, environment, chdir and entry shim)
and reloads only if that works. Runs without blocking the loop: start(), then
poll() from the loop until it returns a result.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from supervisor.spec.model import Spec, runtime_paths
from supervisor.uwsgi.command import INSTANCE_MARK, build_env
from supervisor.uwsgi.runtime import drop_privileges

_FRAME = re.compile(r'^\s*File "(?P<file>[^"]+)", line (?P<line>\d+)')
_EXC = re.compile(
    r"^(?P<name>[A-Za-z_][\w.]*(Error|Exception|Exit|Interrupt|Warning)?)(: (?P<msg>.*))?$"
)

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


def summarize(output: str, chdir: Path) -> str:
    """Turn a traceback into 'ExcName in file.py line N: message'."""
    lines = [line for line in output.splitlines() if line.strip()]
    exc_line = next(
        (line for line in reversed(lines) if _EXC.match(line) and not line.startswith(" ")), ""
    )
    where = ""
    root = str(chdir.resolve())
    for line in lines:
        frame = _FRAME.match(line)
        if frame:
            path = frame.group("file")
            if path.startswith(root) or path.startswith(str(chdir)):
                rel = os.path.relpath(path, root if path.startswith(root) else str(chdir))
                where = f" in {rel} line {frame.group('line')}"
    match = _EXC.match(exc_line)
    if not match:
        return (lines[-1] if lines else "import check failed")[:200]
    name, msg = match.group("name"), match.group("msg") or ""
    text = f"{name}{where}" + (f": {msg}" if msg else "")
    return text[:240]


class Preflight:
    def __init__(self, spec: Spec) -> None:
        self.spec = spec
        self.proc: Optional[subprocess.Popen[bytes]] = None
        self.started = 0.0
        self.deadline = 0.0
        self.out_path = runtime_paths(spec).root / "preflight.out"

    def start(self, now: float) -> None:
        env = build_env(self.spec)
        env.pop(INSTANCE_MARK, None)  # not part of any uWSGI instance
        env["PYTHONDONTWRITEBYTECODE"] = "1"  # leave no .pyc behind in the release
        code = CHECK_CODE.format(
            chdir=str(self.spec.app.chdir), entry=str(runtime_paths(self.spec).entry)
        )
        with open(self.out_path, "wb") as out:
            self.proc = subprocess.Popen(
                [interpreter(self.spec), "-c", code],
                cwd=str(self.spec.app.chdir),
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                **drop_privileges(self.spec),  # import as uWSGI would: the service user
            )
        self.started = now
        self.deadline = now + self.spec.watch.preflight_timeout

    @property
    def running(self) -> bool:
        return self.proc is not None

    def poll(self, now: float) -> Optional[PreflightResult]:
        if self.proc is None:
            return None
        code = self.proc.poll()
        if code is None and now < self.deadline:
            return None
        timed_out = code is None
        if timed_out:
            self._kill()
        self.proc = None
        try:
            output = self.out_path.read_text(errors="replace")
        except OSError:
            output = ""
        seconds = now - self.started
        if timed_out:
            return PreflightResult(
                False,
                f"import check took longer than {self.spec.watch.preflight_timeout:g}s",
                output,
                seconds,
            )
        if code == 0:
            return PreflightResult(True, "", output, seconds)
        return PreflightResult(False, summarize(output, self.spec.app.chdir), output, seconds)

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
