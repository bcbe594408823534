"""The real Controller: spawns uWSGI, writes its FIFO, ends its processes."""

from __future__ import annotations

import collections
import errno
import os
import re
import signal
import subprocess
import time
from pathlib import Path
from typing import Callable, Optional

from supervisor import procs
from supervisor.control import FifoNotReady, write_fifo
from supervisor.notify import Notifier
from supervisor.spec import InstancePaths, Spec, runtime_paths
from supervisor.uwsgi import build_command, write_entry

_ERROR_LINE = re.compile(r"^\s*([A-Za-z_][\w.]*(Error|Exception|Exit)\b.*)$")
_HINT = re.compile(r"in use|denied|cannot|unable|no such|not found|invalid|unknown|no app", re.I)


def summarize_error(lines: "collections.deque[str] | list[str]") -> Optional[str]:
    """The most telling line of uWSGI's last output, e.g. 'ImportError: no module x'."""
    for line in reversed(lines):
        match = _ERROR_LINE.match(line)
        if match:
            return match.group(1)[:200]
    for line in reversed(lines):
        if _HINT.search(line):
            return line.strip()[:200]
    return None


def describe_exit(code: int) -> str:
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    if code == 22:
        return "exit status 22 (no app loaded)"
    return f"exit status {code}"


class UwsgiRunner:
    """Owns the uWSGI master process (our child) and its instance files."""

    def __init__(
        self,
        spec: Spec,
        notifier: Notifier,
        log: Callable[[str], None],
        status: Callable[[], str],
        request_exit: Callable[[int], None],
    ) -> None:
        self.spec = spec
        self.notifier = notifier
        self._log = log
        self._status = status
        self._request_exit = request_exit
        self.proc: Optional[subprocess.Popen[bytes]] = None
        self.output_fd: Optional[int] = None
        self.tail: collections.deque[str] = collections.deque(maxlen=40)
        self._partial = b""
        self.spawn_count = 0
        self.inst: Optional[InstancePaths] = None
        self._spawn_failed: Optional[int] = None

    # -- Controller protocol ---------------------------------------------------

    def spawn(self) -> None:
        paths = runtime_paths(self.spec)
        self._clear_stale_files()
        write_entry(self.spec)
        self.spawn_count += 1
        self.inst = paths.instance(str(self.spawn_count))
        cmd = build_command(self.spec, self.inst)
        read_fd, write_fd = os.pipe()
        os.set_blocking(read_fd, False)
        self.tail.clear()
        try:
            self.proc = subprocess.Popen(
                cmd.argv,
                env=cmd.env,
                stdin=subprocess.DEVNULL,
                stdout=write_fd,
                stderr=write_fd,
                start_new_session=True,  # its own process group: killpg reaches every worker
                umask=0o077,  # FIFO and stats socket private to the service user
                user=self._drop_to_user(),
                group=self._drop_to_group(),
            )
        except OSError as exc:
            os.close(read_fd)
            os.close(write_fd)
            self._log(f"cannot start {cmd.argv[0]}: {exc}")
            self.tail.append(f"OSError: cannot start {cmd.argv[0]}: {exc.strerror}")
            self.proc = None
            self._spawn_failed = 127  # reported as an exit, so backoff applies
            return
        os.close(write_fd)
        if self.output_fd is not None:
            os.close(self.output_fd)
        self.output_fd = read_fd
        self._link(paths.master_fifo, self.inst.master_fifo)
        self._link(paths.stats, self.inst.stats)
        self._log(f"spawned uWSGI pid {self.proc.pid}: {cmd.shell_line()}")

    def send_fifo(self, command: str) -> bool:
        if self.inst is None:
            return False
        try:
            write_fifo(self.inst.master_fifo, command)
            return True
        except FifoNotReady:
            return False

    def signal_master(self, sig: int) -> None:
        if self.proc is not None and self.proc.returncode is None:
            try:
                os.kill(self.proc.pid, sig)
            except ProcessLookupError:
                pass

    def kill_instance(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        procs.kill_leftovers(self.spec.runtime_dir)

    def reap_leftovers(self) -> None:
        killed = procs.kill_leftovers(self.spec.runtime_dir)
        if killed:
            self._log(
                f"ended {len(killed)} leftover uWSGI process(es) of the previous master:"
                f" {' '.join(map(str, killed))}"
            )

    def notify_ready(self) -> None:
        self.notifier.ready(self._status())

    def notify_reloading(self) -> None:
        self.notifier.reloading(self._status())

    def notify_stopping(self) -> None:
        self.notifier.stopping(self._status())

    def log(self, message: str) -> None:
        self._log(message)

    def wall(self) -> float:
        return time.time()

    def exit(self, code: int) -> None:
        self._request_exit(code)

    # -- loop helpers ------------------------------------------------------------

    def poll_exit(self) -> Optional[int]:
        """The master's exit status if it just exited (reaps only our own child)."""
        if self._spawn_failed is not None:
            code, self._spawn_failed = self._spawn_failed, None
            return code
        if self.proc is None:
            return None
        code = self.proc.poll()
        if code is None:
            return None
        self.drain_output()
        self.proc = None
        return code

    def drain_output(self) -> None:
        """Forward uWSGI's output to ours line by line and keep the last lines."""
        if self.output_fd is None:
            return
        while True:
            try:
                chunk = os.read(self.output_fd, 65536)
            except BlockingIOError:
                return
            except OSError as exc:
                if exc.errno == errno.EINTR:
                    continue
                return
            if not chunk:
                os.close(self.output_fd)
                self.output_fd = None
                if self._partial:
                    self._emit(self._partial)
                    self._partial = b""
                return
            data = self._partial + chunk
            *lines, self._partial = data.split(b"\n")
            for line in lines:
                self._emit(line)

    def _emit(self, line: bytes) -> None:
        text = line.decode("utf-8", "replace")
        self.tail.append(text)
        try:
            os.write(1, line + b"\n")
        except OSError:
            pass  # a full disk or closed stdout must not stop supervision

    def last_error(self) -> Optional[str]:
        return summarize_error(self.tail)

    def _clear_stale_files(self) -> None:
        """Remove control files no live process uses (we do not use uWSGI's vacuum)."""
        paths = runtime_paths(self.spec)
        for path in paths.root.glob("master-*.fifo"):
            _unlink(path)
        for path in paths.root.glob("stats-*.sock"):
            _unlink(path)
        if self.spec.uwsgi.socket.is_unix and self.spec.uwsgi.socket.path is not None:
            _unlink(self.spec.uwsgi.socket.path)

    def _link(self, link: Path, target: Path) -> None:
        tmp = link.with_name(f".{link.name}.tmp")
        _unlink(tmp)
        os.symlink(target.name, tmp)
        os.replace(tmp, link)

    def _drop_to_user(self) -> Optional[str]:
        return self.spec.user if os.geteuid() == 0 and self.spec.user else None

    def _drop_to_group(self) -> Optional[str]:
        return self.spec.group if os.geteuid() == 0 and self.spec.group else None


def _unlink(path: Path) -> None:
    try:
        path.unlink()
    except FileNotFoundError:
        pass
