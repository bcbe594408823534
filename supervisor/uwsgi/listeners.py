"""The app's listening sockets: bound once, held for the app's whole life.

The supervisor (or systemd, through a socket unit) owns the listening
sockets; every uWSGI master it starts inherits the same open sockets and
names them `fd://N`. A crashed master, a swap or a restart therefore never
closes the socket nginx connects to: connections wait in its queue for the
next master instead of being refused.
"""

from __future__ import annotations

import os
import socket
import stat
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

from supervisor.spec.hostchecks import lookup_group
from supervisor.spec.model import Address, Spec
from supervisor.uwsgi.command import SocketFds

SOMAXCONN = Path("/proc/sys/net/core/somaxconn")
SD_LISTEN_FDS_START = 3
APP, HTTP = "app", "http"  # the socket unit's FileDescriptorName= values


class ListenerError(Exception):
    """The sockets cannot be set up as the spec says; the message names the fix."""


@dataclass
class Listener:
    role: str  # APP or HTTP
    address: Address
    sock: socket.socket
    held_by: str  # "supervisor", or "systemd" for a socket unit's socket
    backlog: int

    @property
    def fd(self) -> int:
        return self.sock.fileno()


@dataclass
class Listeners:
    app: Listener
    http: Optional[Listener] = None

    def all(self) -> list[Listener]:
        return [self.app] + ([self.http] if self.http is not None else [])

    def fds(self) -> tuple[int, ...]:
        return tuple(listener.fd for listener in self.all())

    def socket_fds(self) -> SocketFds:
        """How uWSGI's command line names them (fd://N)."""
        return SocketFds(self.app.fd, self.http.fd if self.http is not None else None)

    def close(self) -> None:
        for listener in self.all():
            listener.sock.close()


def reopen(current: Listeners, spec: Spec, log: Callable[[str], None]) -> Listeners:
    """The listeners a re-read spec asks for, keeping every socket whose address
    is unchanged (its queue survives). New addresses are bound before anything
    is closed, so a failure (ListenerError) leaves `current` as it was."""
    if current.app.held_by == "systemd":
        raise ListenerError(
            f"{spec.path} changes the listening sockets, which the socket unit holds: change"
            " the socket unit (uwsgi-supervisor render socket) and restart it"
        )
    backlog = effective_backlog(spec.uwsgi.listen, log)
    kept: dict[str, Listener] = {}
    for old in current.all():
        if old.address == wanted_addresses(spec).get(old.role):
            old.sock.listen(backlog)
            old.backlog = backlog
            if old.address.path is not None:
                _open_to_nginx(old.address.path, spec)
            kept[old.role] = old
    wanted = wanted_addresses(spec).items()
    fresh = _bind_all([(r, a) for r, a in wanted if r not in kept], spec, backlog)
    for old in current.all():
        if kept.get(old.role) is not old:
            old.sock.close()
    listeners = {**kept, **fresh}
    return Listeners(listeners[APP], listeners.get(HTTP))


def somaxconn() -> Optional[int]:
    try:
        return int(SOMAXCONN.read_text())
    except (OSError, ValueError):
        return None


def effective_backlog(wanted: int, log: Callable[[str], None]) -> int:
    """The backlog the kernel will grant: `wanted`, capped by net.core.somaxconn."""
    cap = somaxconn()
    if cap is not None and wanted > cap:
        log(
            f"uwsgi.listen is {wanted} but net.core.somaxconn caps every listen queue at {cap};"
            f" using {cap}. To allow {wanted}: sysctl -w net.core.somaxconn={wanted}"
            " (and a file in /etc/sysctl.d/ to keep it)"
        )
        return cap
    return wanted


def open_listeners(
    spec: Spec,
    log: Callable[[str], None],
    environ: Optional[Mapping[str, str]] = None,
    inherited: Sequence[socket.socket] = (),
) -> Listeners:
    """The spec's listening sockets: systemd's if it passed them (LISTEN_FDS),
    else `inherited` (taken from an adopted master, already matched to the
    spec), else bound here. Raises ListenerError with the fix on any mismatch."""
    env = os.environ if environ is None else environ
    backlog = effective_backlog(spec.uwsgi.listen, log)
    passed = _systemd_sockets(env)
    if passed is not None:
        for sock in inherited:
            sock.close()  # the same sockets: systemd's copies are the ones to hold
        return _adopt(spec, passed, env.get("LISTEN_FDNAMES", ""), backlog, log)
    if inherited:
        wanted = wanted_addresses(spec)
        held = {}
        for sock in inherited:
            role = role_of(sock, wanted)
            assert role is not None, "adopt.find_orphan matched every socket to the spec"
            held[role] = Listener(role, wanted[role], sock, "supervisor", backlog)
        held.update(_bind_all([(r, a) for r, a in wanted.items() if r not in held], spec, backlog))
        return Listeners(held[APP], held.get(HTTP))
    listeners = _bind_all(list(wanted_addresses(spec).items()), spec, backlog)
    return Listeners(listeners[APP], listeners.get(HTTP))


def wanted_addresses(spec: Spec) -> dict[str, Address]:
    """The addresses the spec asks for, by role."""
    wanted = {APP: spec.uwsgi.socket}
    if spec.uwsgi.http is not None:
        wanted[HTTP] = spec.uwsgi.http
    return wanted


def _bind_all(
    wanted: list[tuple[str, Address]], spec: Spec, backlog: int
) -> dict[str, Listener]:
    """Bind each (role, address); if one fails, close the ones bound and raise."""
    bound: dict[str, Listener] = {}
    try:
        for role, address in wanted:
            sock = bind(address, spec, backlog)
            bound[role] = Listener(role, address, sock, "supervisor", backlog)
    except ListenerError:
        for listener in bound.values():
            listener.sock.close()
        raise
    return bound


def bind(address: Address, spec: Spec, backlog: int) -> socket.socket:
    """A listening socket at `address` (a unix path is replaced if it is a stale socket)."""
    try:
        if address.path is not None:
            return _bind_unix(address.path, spec, backlog)
        return _bind_tcp(address, backlog)
    except OSError as exc:
        why = exc.strerror or str(exc)
        raise ListenerError(f"cannot listen on {address.for_uwsgi()}: {why}") from exc


def _bind_unix(path: Path, spec: Spec, backlog: int) -> socket.socket:
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        pass
    else:
        if not stat.S_ISSOCK(st.st_mode):
            raise ListenerError(
                f"{path} exists and is not a socket; remove it or choose another uwsgi.socket"
            )
        os.unlink(path)  # a socket nobody serves: a previous life's (the app lock is ours)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(str(path))
        _open_to_nginx(path, spec)
        sock.listen(backlog)
    except BaseException:
        sock.close()
        raise
    return sock


def _open_to_nginx(path: Path, spec: Spec) -> None:
    """nginx's workers connect as the group nginx.group; nobody else may."""
    if spec.nginx.group:
        os.chown(path, -1, lookup_group(spec.nginx.group).gr_gid)
    os.chmod(path, 0o660)


def _bind_tcp(address: Address, backlog: int) -> socket.socket:
    infos = socket.getaddrinfo(
        address.host or None, address.port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )
    family, kind, proto, _, sockaddr = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(sockaddr)
        sock.listen(backlog)
    except BaseException:
        sock.close()
        raise
    return sock


# -- sockets passed by systemd (a socket unit) ---------------------------------------


def _systemd_sockets(env: Mapping[str, str]) -> Optional[list[socket.socket]]:
    """Sockets systemd passed to *this* process, or None if it passed none."""
    if env.get("LISTEN_PID", "") != str(os.getpid()) or not env.get("LISTEN_FDS"):
        return None
    try:
        count = int(env["LISTEN_FDS"])
    except ValueError:
        raise ListenerError(f"LISTEN_FDS={env['LISTEN_FDS']!r} is not a number") from None
    if not 1 <= count <= 2:
        raise ListenerError(
            f"systemd passed {count} sockets (LISTEN_FDS={count}); the socket unit must listen"
            " on the app socket and, with uwsgi.http, the HTTP socket: 1 or 2 sockets"
        )
    found = []
    for fd in range(SD_LISTEN_FDS_START, SD_LISTEN_FDS_START + count):
        try:
            found.append(socket.socket(fileno=fd))
        except OSError as exc:
            raise ListenerError(f"systemd's fd {fd} is not a socket: {exc}") from exc
    return found


def _adopt(
    spec: Spec,
    passed: list[socket.socket],
    names: str,
    backlog: int,
    log: Callable[[str], None],
) -> Listeners:
    """Take systemd's sockets for the spec's addresses; bind the others here.

    A socket unit that listens elsewhere than the spec says is a mistake, but
    not one to take the site down for (a package upgrade restarts every
    instance): the spec's address is bound here instead, with a warning that
    restarts will then refuse connections for a moment, and the fix.
    """
    wanted = wanted_addresses(spec)
    by_role: dict[str, socket.socket] = {}
    labels = names.split(":") if names else []
    for i, sock in enumerate(passed):
        role = role_of(sock, wanted)
        if role is not None:
            by_role[role] = sock
            continue
        label = labels[i] if i < len(labels) else ""
        spelled = ", ".join(f"{r}: {a.for_uwsgi()}" for r, a in wanted.items())
        log(
            f"the socket unit passed {_describe(sock)}{f' (named {label})' if label else ''},"
            f" which the spec {spec.path} does not name ({spelled}); listening where the spec"
            " says instead, so restarts of the service will refuse connections for a moment."
            f" Fix: {_fix(spec, sock)}"
        )
        sock.close()  # systemd keeps its own copy
    listeners: dict[str, Listener] = {}
    for role, sock in by_role.items():
        sock.listen(backlog)  # the spec's backlog, whatever the unit said
        listeners[role] = Listener(role, wanted[role], sock, "systemd", backlog)
    missing = [(r, a) for r, a in wanted.items() if r not in by_role]
    listeners.update(_bind_all(missing, spec, backlog))
    return Listeners(listeners[APP], listeners.get(HTTP))


def _fix(spec: Spec, sock: socket.socket) -> str:
    if sock.family == socket.AF_UNIX and spec.uwsgi.socket.is_unix:
        return (
            f"set uwsgi.socket: {sock.getsockname()} in {spec.path} (and reload nginx with"
            " the include `uwsgi-supervisor render nginx` prints), or make the socket unit"
            f" listen at the spec's address: uwsgi-supervisor render socket {spec.path}"
        )
    return (
        f"uwsgi-supervisor render socket {spec.path} >"
        f" /etc/systemd/system/uwsgi-supervisor@{spec.name}.socket.d/override.conf"
    )


def role_of(sock: socket.socket, wanted: Mapping[str, Address]) -> Optional[str]:
    name = sock.getsockname()
    for role, address in wanted.items():
        if address.path is not None:
            if sock.family == socket.AF_UNIX and name == str(address.path):
                return role
        elif sock.family in (socket.AF_INET, socket.AF_INET6) and name[1] == address.port:
            host = name[0]
            if not address.host or _same_host(host, address.host):
                return role
    return None


def _same_host(bound: str, wanted: str) -> bool:
    if bound == wanted:
        return True
    try:
        return any(info[4][0] == bound for info in socket.getaddrinfo(wanted, None))
    except OSError:
        return False


def _describe(sock: socket.socket) -> str:
    name = sock.getsockname()
    if sock.family == socket.AF_UNIX:
        return f"unix socket {name or '(unnamed)'}"
    return f"TCP socket {name[0]}:{name[1]}"
