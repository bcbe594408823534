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


class AlreadyRunning(Exception):
    pass


def prepare_runtime_dir(spec: Spec) -> IO[str]:
    """Create the runtime dir safely and take the per-app lock.

    The dir is 0711 when nginx must reach a unix socket inside it (others may
    traverse, not list; the FIFO and stats socket are 0600 by uWSGI's umask),
    else 0700. Returns the open lock file, held for the supervisor's life.
    """
    root = spec.runtime_dir
    root.mkdir(parents=True, exist_ok=True, mode=0o700)
    sock = spec.uwsgi.socket.path
    nginx_inside = sock is not None and sock.parent == root
    # Also over systemd's RuntimeDirectoryMode=0750: with a per-app user the
    # dir's group is not nginx's, and nginx must still reach the socket.
    os.chmod(root, 0o711 if nginx_inside else 0o700)
    ids = drop_privileges(spec)
    if ids:  # uWSGI, run as the service user, creates its files here
        os.chown(root, ids["user"], ids["group"])
    lock = open(runtime_paths(spec).lock, "a+")  # noqa: SIM115 - held for the process's life
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


def stop_leftovers(spec: Spec, log: Callable[[str], None], tick: Callable[[], None]) -> None:
    """Stop a uWSGI left over from a previous life of this supervisor (its
    SIGKILL leaves uWSGI running): `q` through its FIFO, then SIGINT, then
    SIGKILL. `tick` runs while waiting (watchdog pings)."""
    pids = procs.instance_pids(spec.runtime_dir)
    if not pids:
        return
    log(
        f"found uWSGI processes {' '.join(map(str, pids))} left over from a previous"
        " supervisor for this app; stopping them gracefully before starting anew"
    )
    paths = runtime_paths(spec)
    for fifo in sorted(paths.root.glob("master-*.fifo")):
        try:
            write_fifo(fifo, "q")
        except (FifoNotReady, OSError):
            pass  # nobody reads it: the SIGINT below covers that master
    if not procs.wait_gone(spec.runtime_dir, min(spec.stop_timeout, 10.0), tick):
        masters = [
            p for p in procs.instance_pids(spec.runtime_dir) if procs.parent_pid(p) not in pids
        ]
        procs.signal_pids(masters, signal.SIGINT)
        if not procs.wait_gone(spec.runtime_dir, 3.0, tick):
            killed = procs.kill_leftovers(spec.runtime_dir)
            log(f"killed leftover uWSGI processes {' '.join(map(str, killed))}")
