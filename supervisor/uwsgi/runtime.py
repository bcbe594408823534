"""The app's runtime dir: created safely, locked for one supervisor, and
cleared of a uWSGI left over from a previous supervisor's life."""

from __future__ import annotations

import fcntl
import os
import signal
from typing import IO, Any, Callable, Optional

from supervisor.spec.hostchecks import lookup_group, lookup_user
from supervisor.spec.model import Spec, runtime_paths
from supervisor.uwsgi import procs
from supervisor.uwsgi.fifo import FifoNotReady, write_fifo
from supervisor.uwsgi.private import (
    UnusableRuntimeDir,
    check_ours,
    give_to_dir_owner,
    open_private,
    secure_dirs,
)

__all__ = [
    "AlreadyRunning",
    "UnusableRuntimeDir",
    "drop_privileges",
    "prepare_runtime_dir",
    "stop_leftovers",
]


class AlreadyRunning(Exception):
    pass


def prepare_runtime_dir(spec: Spec) -> IO[str]:
    """Create the runtime dir safely and take the per-app lock.

    Every dir on the way that we create, or that another user could have made
    first, must be a real dir of ours that others cannot write (see
    `private.secure_dirs`); else UnusableRuntimeDir says which and why, and
    nothing is written. The dir is 0711 when nginx must reach a unix socket
    inside it (others may traverse, not list; the FIFO and stats socket are
    0600 by uWSGI's umask), else 0700. Returns the open lock file, held for
    the supervisor's life.
    """
    root = spec.runtime_dir
    ids = drop_privileges(spec)
    # Ours, or, when root, the service user's: systemd's RuntimeDirectory= with
    # User= makes it theirs, and so does our own chown on an earlier start.
    owners = frozenset({os.geteuid()} | ({ids["user"]} if ids else set()))
    sock = spec.uwsgi.socket.path
    nginx_inside = sock is not None and sock.parent == root
    try:
        secure_dirs(root, owners)
        fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
        try:
            check_ours(root, os.fstat(fd), owners)  # the very dir we will use
            # Also over systemd's RuntimeDirectoryMode=0750: with a per-app user the
            # dir's group is not nginx's, and nginx must still reach the socket.
            os.fchmod(fd, 0o711 if nginx_inside else 0o700)
            if ids:  # uWSGI, run as the service user, creates its files here
                os.fchown(fd, ids["user"], ids["group"])
        finally:
            os.close(fd)
        lock_fd = open_private(runtime_paths(spec).lock, os.O_RDWR | os.O_APPEND)
        give_to_dir_owner(lock_fd, root)
    except OSError as exc:
        raise UnusableRuntimeDir(f"cannot prepare the runtime dir {root}: {exc}") from exc
    lock = os.fdopen(lock_fd, "a+")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        lock.seek(0)
        other = lock.read().strip() or "unknown"
        lock.close()
        raise AlreadyRunning(
            f"another uwsgi-supervisor (pid {other}) already supervises {spec.name}"
            f" (lock {runtime_paths(spec).lock})"
        ) from exc
    lock.truncate(0)
    lock.write(f"{os.getpid()}\n")
    lock.flush()
    return lock


def drop_privileges(spec: Spec, euid: Optional[int] = None) -> dict[str, Any]:
    """Popen arguments that run a child as the service user when we are root
    (`euid`, default ours) and the spec names one: uid, gid, and that user's
    own supplementary groups (never root's). Empty otherwise."""
    if (os.geteuid() if euid is None else euid) != 0 or not spec.user:
        return {}
    pw = lookup_user(spec.user)
    gid = lookup_group(spec.group).gr_gid if spec.group else pw.pw_gid
    return {"user": pw.pw_uid, "group": gid, "extra_groups": os.getgrouplist(pw.pw_name, gid)}


def stop_leftovers(
    spec: Spec, log: Callable[[str], None], tick: Callable[[], None], spare: Optional[str] = None
) -> None:
    """Stop a uWSGI left over from a previous life of this supervisor (its
    SIGKILL leaves uWSGI running): `q` through its FIFO, then SIGINT, then
    SIGKILL. `tick` runs while waiting (watchdog pings). Instance `spare`
    (an adopted master's) is left alone."""
    pids = procs.instance_pids(spec.runtime_dir, spare=spare)
    if not pids:
        return
    log(
        f"found uWSGI processes {' '.join(map(str, pids))} left over from a previous"
        " supervisor for this app; stopping them gracefully"
        + (" (the adopted master keeps serving)" if spare else " before starting anew")
    )
    paths = runtime_paths(spec)
    for fifo in sorted(paths.root.glob("master-*.fifo")):
        if spare is not None and fifo == paths.instance(spare).master_fifo:
            continue
        try:
            write_fifo(fifo, "q")
        except (FifoNotReady, OSError):
            pass  # nobody reads it: the SIGINT below covers that master
    if not procs.wait_gone(spec.runtime_dir, min(spec.stop_timeout, 10.0), tick, spare):
        left = procs.instance_pids(spec.runtime_dir, spare=spare)
        masters = [p for p in left if procs.parent_pid(p) not in pids]
        procs.signal_pids(masters, signal.SIGINT)
        if not procs.wait_gone(spec.runtime_dir, 3.0, tick, spare):
            killed = procs.kill_leftovers(spec.runtime_dir, spare=spare)
            log(f"killed leftover uWSGI processes {' '.join(map(str, killed))}")
