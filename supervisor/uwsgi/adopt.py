"""Adopt the healthy uWSGI a previous life of this supervisor left serving.

A supervisor killed with SIGKILL (an OOM kill, a careless `kill -9`, a crash
of Python itself) leaves its uWSGI serving: the master is tagged with the
runtime dir, and its FIFO, stats socket and listening sockets are intact.
Stopping it and starting another used to cost a second of 502s. Instead the
next supervisor takes it over, when it can be sure it is exactly the master
it would start:

- it is the master the runtime dir's `master.fifo` link names, and the only
  master of that instance;
- its command line is the one this spec gives (same options, same app);
- its stats socket answers and every worker serves;
- its listening sockets can be taken (pidfd_getfd, Linux 5.6): the new
  supervisor must hold them too, for every master after this one.

Anything else is a leftover, stopped as before.
"""

from __future__ import annotations

import ctypes
import os
import platform
import socket
from dataclasses import dataclass, field
from typing import Callable, Optional

from supervisor.spec.model import Spec, runtime_paths
from supervisor.uwsgi import procs
from supervisor.uwsgi.command import SocketFds, build_command
from supervisor.uwsgi.listeners import role_of, wanted_addresses
from supervisor.uwsgi.stats import read_stats

# pidfd_getfd(2): the same number on every architecture Linux added it to
# after the syscall tables were unified (5.6).
PIDFD_GETFD = 438
FD_FLAG = "fd://"


@dataclass
class Orphan:
    """A serving uWSGI master of this app whose supervisor is gone."""

    pid: int
    tag: str
    fds: SocketFds  # how its command line names its listening sockets
    sockets: list[socket.socket] = field(default_factory=list)  # our copies of them


def take_fd(pid: int, target_fd: int) -> int:
    """A copy of process `pid`'s descriptor `target_fd` (pidfd_getfd); OSError if not."""
    pidfd = os.pidfd_open(pid)
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        fd = int(libc.syscall(PIDFD_GETFD, pidfd, target_fd, 0))
        if fd < 0:
            err = ctypes.get_errno()
            raise OSError(err, f"pidfd_getfd: {os.strerror(err)}")
        os.set_inheritable(fd, False)
        return fd
    finally:
        os.close(pidfd)


def _cmdline(pid: int) -> list[str]:
    with open(f"/proc/{pid}/cmdline", "rb") as f:
        return [arg.decode(errors="surrogateescape") for arg in f.read().split(b"\0")[:-1]]


def _socket_fds(argv: list[str]) -> Optional[SocketFds]:
    """The fd://N numbers of --socket and --http-socket on a uWSGI command line."""
    found: dict[str, int] = {}
    for flag, value in zip(argv, argv[1:]):
        if flag in ("--socket", "--http-socket") and value.startswith(FD_FLAG):
            try:
                found[flag] = int(value[len(FD_FLAG) :])
            except ValueError:
                return None
    if "--socket" not in found:
        return None
    return SocketFds(found["--socket"], found.get("--http-socket"))


def find_orphan(spec: Spec, log: Callable[[str], None]) -> Optional[Orphan]:
    """The serving master a previous supervisor left, with its sockets taken;
    None (and why, logged, when there was a candidate) if there is none to adopt."""
    paths = runtime_paths(spec)
    try:
        link = os.readlink(paths.master_fifo)
    except OSError:
        return None
    if not (link.startswith("master-") and link.endswith(".fifo")):
        return None
    tag = link[len("master-") : -len(".fifo")]
    pids = procs.instance_pids(spec.runtime_dir, tag)
    masters = [p for p in pids if procs.parent_pid(p) not in pids]
    if len(masters) != 1:
        return None
    pid = masters[0]
    why = _refusal(spec, pid, tag)
    if isinstance(why, str):
        log(f"not adopting uWSGI pid {pid} left by a previous supervisor: {why}")
        return None
    return why


def _refusal(spec: Spec, pid: int, tag: str) -> Orphan | str:
    """The orphan, or why it must not be adopted."""
    if platform.system() != "Linux" or not hasattr(os, "pidfd_open"):
        return "taking its sockets needs Linux's pidfd_getfd"
    try:
        argv = _cmdline(pid)
    except OSError as exc:
        return f"cannot read its command line: {exc.strerror}"
    fds = _socket_fds(argv)
    if fds is None:
        return "its command line names no fd:// socket (an older uwsgi-supervisor started it)"
    inst = runtime_paths(spec).instance(tag)
    if argv != build_command(spec, inst, fds).argv:
        return "its command line differs from what the spec gives now"
    stats = read_stats(inst.stats, timeout=2.0)
    if stats is None or not stats.all_serving:
        return "its stats socket does not answer, or not every worker serves"
    orphan = Orphan(pid, tag, fds)
    try:
        for fd in (fds.app, fds.http):
            if fd is not None:
                orphan.sockets.append(socket.socket(fileno=take_fd(pid, fd)))
    except OSError as exc:
        _close(orphan)
        return f"cannot take its listening sockets: {exc.strerror or exc}"
    wanted = wanted_addresses(spec)
    if sorted(str(role_of(s, wanted)) for s in orphan.sockets) != sorted(wanted):
        _close(orphan)
        return "it listens elsewhere than the spec says now"
    return orphan


def _close(orphan: Orphan) -> None:
    for sock in orphan.sockets:
        sock.close()
    orphan.sockets.clear()
