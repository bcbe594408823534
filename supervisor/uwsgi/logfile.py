"""The operator's `logto` file: made for the service user, and reopened after a rotation.

logrotate (or an `mv`) renames the file; uWSGI keeps writing into the
renamed one until its master reopens the path (FIFO `l`). The supervisor
notices the rename itself, so the logrotate snippet needs no postrotate
script and no reload, and a rotation while the supervisor is down is caught
up at its next start (an adopted master is told to reopen once).

uWSGI reopens as the service user (it dropped root long before), and when
that open fails it does a graceful reload (`grace_them_all`). So `l` is
sent only once the file at the path exists and that user can write it: a
missing file is made for that user after a grace moment (logrotate's own
`create` follows its rename at once), and one the user cannot write is
reported, once per state of the file, while uWSGI keeps writing to the
rotated file. Nothing is lost either way: uWSGI's descriptor still points
at the renamed file (logrotate's `delaycompress` keeps it uncompressed).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable, Optional

from supervisor.spec.access import access_problems
from supervisor.spec.model import Spec
from supervisor.uwsgi.private import describe
from supervisor.uwsgi.runtime import drop_privileges

# How long a missing log is left to logrotate's `create` before we make it.
CREATE_GRACE = 1.0

Ident = tuple[int, int]  # st_dev, st_ino: which file a path names


def ident(st: os.stat_result) -> Ident:
    return st.st_dev, st.st_ino


def open_logto(path: Path, credentials: dict[str, Any]) -> int:
    """Open `logto` for appending (uWSGI's output before it opens it itself);
    a file we create is the service user's (`credentials`), so uWSGI can
    reopen it after a rotation. The caller closes the descriptor."""
    flags = os.O_WRONLY | os.O_APPEND | os.O_CLOEXEC
    try:
        fd = os.open(path, flags | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    except FileExistsError:
        # The operator's file, or a symlink of theirs (followed, as uWSGI will).
        return os.open(path, flags | os.O_CREAT, 0o600)
    try:
        if credentials:
            os.fchown(fd, credentials["user"], credentials["group"])
    except BaseException:
        os.close(fd)
        raise
    return fd


class Rotation:
    """Follows one master's `logto` path: says when that master must reopen it."""

    def __init__(self, spec: Spec, path: Path) -> None:
        self.spec = spec
        self.path = path
        self.credentials = drop_privileges(spec)  # whom a file we make belongs to
        # The file uWSGI writes, as far as we know; None: unknown (an adopted
        # master, which may have missed a rotation), so it reopens once.
        self.writes: Optional[Ident] = None
        self.missing_since: Optional[float] = None
        self._reported: Optional[tuple[int, ...]] = None  # the file state last refused
        self._vetted = False  # the file uWSGI started on was checked for the next rotation
        # The last answer of the (subprocess) probe, by file and change time: a
        # file that stays unusable is not probed again on every turn of the loop;
        # a chown, chmod or ACL change (a new ctime) is.
        self._verdict: Optional[tuple[tuple[int, int, bool], Optional[str]]] = None

    def opened(self, fd: int) -> None:
        """uWSGI was started on the file open as `fd`."""
        self.writes = ident(os.fstat(fd))

    def due(self, now: float, log: Callable[[str], None]) -> Optional[Ident]:
        """The file uWSGI should reopen now (it writes another one, and this one
        is ready for it), or None. Reports a file it cannot use, once."""
        st: Optional[os.stat_result]
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            st = self._create(now, log)
        except OSError as exc:
            self._report((exc.errno or 0,), log, f"cannot check {self.path}: {exc.strerror}")
            return None
        if st is None:
            return None
        self.missing_since = None
        state = (st.st_ino, st.st_mode, st.st_uid, st.st_gid)
        if ident(st) == self.writes:
            if not self._vetted:  # say now what would go wrong at the next rotation
                self._vetted = True
                problem = self._checked(st, rotated=False)
                if problem is not None:
                    self._report(state, log, problem)
            return None
        problem = self._checked(st, rotated=True)
        if problem is not None:
            self._report(state, log, problem)
            return None
        return ident(st)

    def reopened(self, file: Ident) -> None:
        """uWSGI was told to reopen: it writes `file` from now on."""
        self.writes = file
        self._reported = None

    def _create(self, now: float, log: Callable[[str], None]) -> Optional[os.stat_result]:
        if self.missing_since is None:
            self.missing_since = now
        if now - self.missing_since < CREATE_GRACE:
            return None  # logrotate's `create` may be about to make it
        try:
            fd = os.open(
                self.path,
                os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                0o600,
            )
        except FileExistsError:
            return None  # made meanwhile: looked at next time
        except OSError as exc:
            self._report(
                (exc.errno or 0,),
                log,
                f"logto {self.path} was moved away and cannot be made anew: {exc.strerror};"
                " uWSGI keeps writing to the moved file. Create it for the service user"
                " (logrotate: `create`)",
            )
            return None
        try:
            if self.credentials:
                os.fchown(fd, self.credentials["user"], self.credentials["group"])
            return os.fstat(fd)
        finally:
            os.close(fd)

    def _checked(self, st: os.stat_result, rotated: bool) -> Optional[str]:
        key = (st.st_ino, st.st_ctime_ns, rotated)
        if self._verdict is None or self._verdict[0] != key:
            self._verdict = (key, self._problem(st, rotated))
        return self._verdict[1]

    def _problem(self, st: os.stat_result, rotated: bool) -> Optional[str]:
        found = access_problems(self.spec.user, self.spec.group, {0: [(self.path, "w")]})
        if not found:
            return None
        if not rotated:  # uWSGI opened it as root at start; a reopen comes as the user
            return (
                f"logto {self.path}: {found[0]} [{describe(self.path, st)}], so after a"
                " rotation uWSGI could not reopen it and would write on into the rotated"
                f" file; give {self.path} to the service user"
            )
        return (
            f"logto {self.path} was rotated, but uWSGI is not told to reopen it: {found[0]}"
            f" [{describe(self.path, st)}]. Until then uWSGI keeps writing to the rotated"
            " file (a reopen that fails makes uWSGI reload). In logrotate, a bare `create`"
            " gives the new file the rotated one's owner and mode"
        )

    def _report(self, state: tuple[int, ...], log: Callable[[str], None], message: str) -> None:
        if state != self._reported:
            self._reported = state
            log(message)
