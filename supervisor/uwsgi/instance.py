"""One uWSGI master we spawned: its process, control files and output."""

from __future__ import annotations

import collections
import os
import re
import select
import signal
import stat
import subprocess
from typing import Any, Callable, Optional

from supervisor.exitcodes import UWSGI_NO_APP
from supervisor.lifecycle.samples import Stats
from supervisor.spec.model import InstancePaths, Spec
from supervisor.uwsgi import procs
from supervisor.uwsgi.command import Command
from supervisor.uwsgi.fifo import FifoNotReady, write_fifo
from supervisor.uwsgi.logfile import Rotation, open_logto
from supervisor.uwsgi.private import open_private
from supervisor.uwsgi.stats import read_stats

# A request line of uWSGI's log: "... (HTTP/1.1 500) 2 headers in 79 bytes ..."
ANSWER = re.compile(rb"\(HTTP/[0-9.]+ ([1-5][0-9][0-9])\) ")

# The exit status of an adopted master is its former parent's to collect: we
# only see that it is gone.
ADOPTED_EXIT = 1000


def describe_exit(code: int) -> str:
    if code == ADOPTED_EXIT:
        return "exited (an adopted master: its status went to its first parent)"
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    if code == UWSGI_NO_APP:
        return f"exit status {code} (no app loaded)"
    return f"exit status {code}"


class Instance:
    """A uWSGI master and its workers (one process group, one instance tag)."""

    def __init__(self, spec: Spec, paths: InstancePaths) -> None:
        self.spec = spec
        self.paths = paths
        self.proc: Optional[subprocess.Popen[bytes]] = None
        self.adopted: Optional[int] = None  # a pidfd: a master another supervisor started
        self._adopted_pid: Optional[int] = None
        # uWSGI writes to a file, never to a pipe of ours: if the supervisor
        # died, a pipe would break and uWSGI spins on EPIPE (a worker at 100%
        # CPU, requests stalled). We tail the file and forward it instead.
        self.log_path = spec.logto or paths.root / f"uwsgi-{paths.tag}.log"
        self.forward = spec.logto is None
        self._log_fd: Optional[int] = None
        self._log_ino = 0
        # The operator's file: reopened by uWSGI after each rotation.
        self.rotation = None if self.forward else Rotation(spec, self.log_path)
        self.tail: collections.deque[str] = collections.deque(maxlen=50)
        self._partial = b""
        self.exit_code: Optional[int] = None
        self.exit_reported = False  # the loop hears of each exit once
        # Retirement after a swap: `q`, then SIGINT, then SIGKILL.
        self.retire_stage = ""
        self.retire_deadline = 0.0
        self.retire_quit_sent = False
        # Answers in uWSGI's request log (its default logging), for the bake.
        self.answered = 0
        self.server_errors = 0

    @property
    def tag(self) -> str:
        return self.paths.tag

    @property
    def pid(self) -> Optional[int]:
        return self.proc.pid if self.proc is not None else self._adopted_pid

    def adopt(self, pid: int) -> None:
        """Take over master `pid`, left serving by a previous supervisor: watch
        its exit through a pidfd and tail its log from where it is now."""
        self.adopted = os.pidfd_open(pid)
        self._adopted_pid = pid
        self._open_log(at_end=True)

    def start(self, cmd: Command, credentials: dict[str, Any], fds: tuple[int, ...]) -> None:
        """Spawn uWSGI (as the service user, per `credentials`) with the listening
        sockets `fds` open. Raises OSError if it cannot be executed."""
        if self.forward:  # ours, in the runtime dir: private, never through a symlink
            out = open_private(self.log_path, os.O_WRONLY | os.O_APPEND)
        else:  # the operator's `logto`, wherever they chose (a symlink is theirs)
            out = open_logto(self.log_path, credentials)
        try:
            if self.rotation is not None:
                self.rotation.opened(out)
            if credentials and self.forward:  # uWSGI reopens its log by path
                os.fchown(out, credentials["user"], credentials["group"])
            self._open_log(at_end=True)
            self.proc = subprocess.Popen(
                cmd.argv,
                env=cmd.env,
                stdin=subprocess.DEVNULL,
                stdout=out,  # what uWSGI prints before it opens its logto
                stderr=out,
                pass_fds=fds,  # the listening sockets, named fd://N on its command line
                start_new_session=True,  # its own process group: killpg reaches every worker
                umask=0o077,  # FIFO and stats socket private to the service user
                **credentials,
            )
        finally:
            os.close(out)

    def _open_log(self, at_end: bool) -> None:
        if self._log_fd is not None:
            os.close(self._log_fd)
            self._log_fd = None
        # Never read what the service user links in our log's place (and then
        # forward it to the journal as root).
        safe = os.O_NOFOLLOW | os.O_NONBLOCK if self.forward else 0
        try:
            fd = os.open(self.log_path, os.O_RDONLY | os.O_CLOEXEC | safe)
        except OSError:
            return
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            os.close(fd)
            return
        self._log_ino = st.st_ino
        if at_end:
            os.lseek(fd, st.st_size, os.SEEK_SET)
        self._log_fd = fd

    def poll(self) -> Optional[int]:
        """Exit status once the master exited (reaps only this child), else None."""
        if self.exit_code is not None:
            return self.exit_code
        if self.proc is None:
            return self._poll_adopted()
        code = self.proc.poll()
        if code is not None:
            self.drain_output()
            self.exit_code = code
        return code

    def _poll_adopted(self) -> Optional[int]:
        if self.adopted is None:
            return None
        if not select.select([self.adopted], [], [], 0)[0]:
            return None  # a pidfd turns readable when its process exits
        self.drain_output()
        self.exit_code = ADOPTED_EXIT
        return self.exit_code

    def stats(self, timeout: float = 0.5) -> Optional[Stats]:
        return read_stats(self.paths.stats, timeout)

    def send_fifo(self, command: str) -> bool:
        try:
            write_fifo(self.paths.master_fifo, command)
            return True
        except FifoNotReady:
            return False

    def reopen_log(self, now: float, warn: Callable[[str], None]) -> bool:
        """After a rotation of `logto`, tell the master to reopen it (FIFO `l`)
        once the file at its path is ready for uWSGI; True when told."""
        rotation = self.rotation
        if rotation is None or self.exit_code is not None or self.pid is None:
            return False
        file = rotation.due(now, warn)
        if file is None or not self.send_fifo("l"):
            return False  # not rotated, not ready, or the master is between execs
        rotation.reopened(file)
        return True

    def signal(self, sig: int) -> None:
        if self.adopted is not None and self.exit_code is None:
            try:
                signal.pidfd_send_signal(self.adopted, sig)  # never a reused pid
            except ProcessLookupError:
                pass
        elif self.pid is not None and self.exit_code is None:
            try:
                os.kill(self.pid, sig)
            except ProcessLookupError:
                pass

    def kill(self) -> list[int]:
        """SIGKILL the master's whole group and any stray process of this instance."""
        if self.pid is not None and self.exit_code is None:
            try:
                os.killpg(self.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        return procs.kill_leftovers(self.spec.runtime_dir, self.tag)

    def drain_output(self) -> None:
        """Read what uWSGI wrote since the last call; forward it and keep the last lines."""
        if self._log_fd is None:
            self._open_log(at_end=False)
            if self._log_fd is None:
                return
        renamed = False
        while True:
            chunk = os.read(self._log_fd, 65536)
            if chunk:
                data = self._partial + chunk
                *lines, self._partial = data.split(b"\n")
                for line in lines:
                    self._emit(line)
                continue
            if renamed:  # read to the end once more: what came just before the rename
                self._open_log(at_end=False)
                renamed = False
                if self._log_fd is None:
                    return
                continue
            # At the end: follow a rotation (uWSGI's own, or logrotate's) to the new file.
            try:
                renamed = os.stat(self.log_path).st_ino != self._log_ino
            except OSError:
                renamed = False
            if not renamed:
                return

    def _emit(self, line: bytes) -> None:
        self.tail.append(line.decode("utf-8", "replace"))
        answer = ANSWER.search(line)
        if answer is not None:  # uWSGI's request log: count what the site got
            self.answered += 1
            self.server_errors += answer.group(1).startswith(b"5")
        if not self.forward:
            return
        try:
            os.write(1, line + b"\n")
        except OSError:
            pass  # a full disk or closed stdout must not stop supervision

    def close(self) -> None:
        if self.adopted is not None:
            os.close(self.adopted)
            self.adopted = None
        self.drain_output()
        if self._partial:
            self._emit(self._partial)
            self._partial = b""
        if self._log_fd is not None:
            os.close(self._log_fd)
            self._log_fd = None
        paths = [self.paths.master_fifo, self.paths.stats, self.paths.health, self.paths.hold]
        paths += self.paths.root.glob(f"tb-{self.tag}-*")
        if self.forward:
            paths += [self.log_path, self.log_path.with_name(self.log_path.name + ".old")]
        for path in paths:
            try:
                path.unlink()
            except FileNotFoundError:
                pass
