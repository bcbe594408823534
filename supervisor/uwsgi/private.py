"""The runtime dir's directories and files: ours alone, never reached through a symlink.

Another local user may make a path first (the `/tmp/uwsgi-supervisor-UID`
default lives in a world-writable dir), and the service user, who owns the
runtime dir, may plant a symlink where a root supervisor writes or reads. So
every directory we create or reuse is checked with lstat (never following a
link), and every file we write or read back there is opened with O_NOFOLLOW
and made 0600.
"""

from __future__ import annotations

import errno
import os
import pwd
import stat
from pathlib import Path

# Symlinks followed in the operator's part of the path (e.g. /var/run -> /run)
# before we give up, as the kernel's ELOOP does.
MAX_HOPS = 40


class UnusableRuntimeDir(Exception):
    """The runtime dir (or a dir on its path) is not safely ours: we refuse to use it."""


def owner_name(uid: int) -> str:
    try:
        return f"{pwd.getpwuid(uid).pw_name} (uid {uid})"
    except KeyError:
        return f"uid {uid}"


def describe(path: Path, st: os.stat_result) -> str:
    """`path` with its kind, owner and mode, as a refusal names them."""
    return (
        f"{path} (owner {owner_name(st.st_uid)}, mode {stat.filemode(st.st_mode)}"
        f" {stat.S_IMODE(st.st_mode):04o})"
    )


def _writable_by_others(st: os.stat_result) -> bool:
    return bool(st.st_mode & (stat.S_IWGRP | stat.S_IWOTH))


def secure_dirs(target: Path, owners: frozenset[int]) -> None:
    """Create `target` and its missing parents one at a time (0700), and refuse
    any of them that is not safely ours.

    A directory must be a real directory (not a symlink) owned by one of
    `owners` and not writable by group or others when it is the target, when
    we created it, or when its parent is writable by others (so that anyone
    could have made it first: `/tmp/uwsgi-supervisor-UID`). The rest of the
    path is the operator's (`/run`, `/srv/app`): a symlink there is followed
    if root or one of `owners` made it. A parent writable by others without
    the sticky bit is refused too: anyone could rename our dir away.
    Raises UnusableRuntimeDir naming the path, its owner and mode, and what to do.
    """
    if not target.is_absolute():
        raise UnusableRuntimeDir(f"runtime_dir {target} is not an absolute path")
    trusted = owners | {0}
    pending = list(target.parts[1:])
    path = Path("/")
    hops = 0
    while pending:
        name = pending.pop(0)
        parent = os.stat(path)  # `path` is a checked dir or a resolved one
        child = path / name
        strangers_could = _writable_by_others(parent)
        if strangers_could and not parent.st_mode & stat.S_ISVTX:
            raise UnusableRuntimeDir(
                f"{describe(path, parent)} is writable by others without the sticky bit:"
                f" anyone could replace {child}; make it writable by its owner only,"
                " or set runtime_dir elsewhere"
            )
        created = False
        try:
            st = os.lstat(child)
        except FileNotFoundError:
            try:
                os.mkdir(child, 0o700)
                created = True
            except FileExistsError:
                pass  # made by someone else meanwhile: checked below like any found dir
            except OSError as exc:
                raise UnusableRuntimeDir(f"cannot create {child}: {exc.strerror}") from exc
            st = os.lstat(child)
        ours = not pending or created or strangers_could
        if stat.S_ISLNK(st.st_mode):
            if ours or st.st_uid not in trusted:
                raise UnusableRuntimeDir(
                    f"{describe(child, st)} is a symlink"
                    f" -> {os.readlink(child)}; the supervisor does not follow one"
                    " there: remove it (someone else may have planted it), or set"
                    " runtime_dir to a real directory"
                )
            hops += 1
            if hops > MAX_HOPS:
                raise UnusableRuntimeDir(f"too many symlinks on the way to {target}")
            # The operator's link: go on from its target, checking that path too.
            pending = list(Path(os.path.realpath(child)).parts[1:]) + pending
            path = Path("/")
            continue
        if not stat.S_ISDIR(st.st_mode):
            raise UnusableRuntimeDir(
                f"{describe(child, st)} is not a directory; remove it, or set runtime_dir elsewhere"
            )
        if ours:
            check_ours(child, st, owners)
        path = child


def check_ours(path: Path, st: os.stat_result, owners: frozenset[int]) -> None:
    """Refuse a directory another user owns, or one others may write to."""
    if st.st_uid not in owners:
        whom = " or ".join(owner_name(u) for u in sorted(owners))
        raise UnusableRuntimeDir(
            f"{describe(path, st)} is not owned by {whom}: another user may have made it"
            " first to own the files in it. Remove it (after checking who made it and"
            " why), or set runtime_dir to a directory of the service's own"
        )
    if _writable_by_others(st):
        raise UnusableRuntimeDir(
            f"{describe(path, st)} is writable by group or others, who could plant files"
            f" in it; remove it or `chmod go-w {path}`"
        )


def open_private(path: Path, flags: int) -> int:
    """Open a file of the runtime dir for writing (created 0600) without following
    a symlink; return the fd.

    Whatever else is found at `path` (a symlink, a FIFO, a directory left there)
    is removed and the file made anew with O_EXCL, which never follows a link:
    only the runtime dir's owner can have put it there, and we must not write
    through it.
    """
    flags |= os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK
    try:
        fd = os.open(path, flags, 0o600)
    except OSError as exc:
        if exc.errno not in (errno.ELOOP, errno.ENXIO, errno.EISDIR):
            raise
        fd = -1
    if fd >= 0 and not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        fd = -1
    if fd < 0:
        _remove(path)
        fd = os.open(path, flags | os.O_EXCL, 0o600)
    try:
        os.set_blocking(fd, True)  # O_NONBLOCK only guarded the open against a FIFO
        if stat.S_IMODE(os.fstat(fd).st_mode) != 0o600:
            os.fchmod(fd, 0o600)  # an older, wider file of ours
    except BaseException:
        os.close(fd)
        raise
    return fd


def read_private(path: Path) -> bytes:
    """The content of a regular file of the runtime dir, never read through a symlink.

    Raises OSError if something else is there (ELOOP for a symlink).
    """
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
    with os.fdopen(fd, "rb") as f:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(errno.EINVAL, "not a regular file", str(path))
        return f.read()


def give_to_dir_owner(fd: int, directory: Path) -> None:
    """As root, give a file we made to the runtime dir's owner (the service user).

    The runtime dir is theirs (uWSGI runs as them), so this grants nothing they
    could not do already, and it lets the service user read what it needs
    (the entry shim) and run `status` (state.json, the lock) as root can.
    """
    if os.geteuid() != 0:
        return
    st = os.stat(directory)
    if st.st_uid != 0:
        os.fchown(fd, st.st_uid, st.st_gid)


def _remove(path: Path) -> None:
    try:
        os.unlink(path)
    except IsADirectoryError:
        os.rmdir(path)  # an empty dir; a full one stays, and OSError says so
    except FileNotFoundError:
        pass
