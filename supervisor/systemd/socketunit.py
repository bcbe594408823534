"""Render the socket unit drop-in that makes systemd hold a Spec's listening sockets.

The shipped `uwsgi-supervisor@.socket` listens on /run/uwsgi-supervisor/APP.sock.
A spec that listens anywhere else (a TCP port, its own path, uWSGI's HTTP
listener too) needs the socket unit to listen there instead: the supervisor
adopts systemd's sockets only when every address matches the spec.
"""

from __future__ import annotations

import socket

from supervisor.spec.model import Address, Spec
from supervisor.spec.values import check_name
from supervisor.systemd.unit import unit_value
from supervisor.text import comment


def listen_stream(address: Address) -> str:
    """The address as a socket unit's ListenStream= takes it: a path, IPv4:port or [IPv6]:port.

    systemd resolves no host names, so a name (localhost) is resolved here, to the
    address the supervisor itself would bind (the resolver's first answer).
    """
    if address.path is not None:
        return unit_value(str(address.path))
    if not address.host:
        return f"0.0.0.0:{address.port}"  # uWSGI's ":PORT": every IPv4 interface
    try:
        infos = socket.getaddrinfo(
            address.host, address.port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
    except OSError as exc:
        raise ValueError(f"cannot resolve {address.host!r}: {exc}") from exc
    family, host = infos[0][0], str(infos[0][4][0])
    return f"[{host}]:{address.port}" if family == socket.AF_INET6 else f"{host}:{address.port}"


def _outside_runtime_dir(spec: Spec, key: str, address: Address) -> None:
    """systemd deletes the service's RuntimeDirectory= whenever the service stops: a socket
    file in it would vanish while the socket unit still holds the socket."""
    if address.path is None:
        return
    if address.path == spec.runtime_dir or spec.runtime_dir in address.path.parents:
        raise ValueError(
            f"{key} {address.path} is inside the runtime directory {spec.runtime_dir}, which"
            " systemd deletes whenever the service stops; the socket unit must listen outside"
            f" it: set {key}: /run/uwsgi-supervisor/{spec.name}.sock in {spec.path}"
        )


def render_socket_dropin(spec: Spec) -> str:
    """The drop-in that makes uwsgi-supervisor@APP.socket listen where the spec says."""
    unit = f"uwsgi-supervisor@{check_name(spec.name)}.socket"
    u = spec.uwsgi
    _outside_runtime_dir(spec, "uwsgi.socket", u.socket)
    lines = [
        f"# systemd drop-in for {unit}, rendered from {comment(spec.path)}",
        "# by `uwsgi-supervisor render socket`: render it again after changing the",
        "# spec's addresses. Install as",
        f"# /etc/systemd/system/{unit}.d/override.conf, then run",
        f"#     systemctl daemon-reload && systemctl restart {unit}",
        "# (that closes the old socket, and restarts the service that uses it).",
        "[Socket]",
        "# Empty first: the addresses below replace the unit's, not add to them.",
        "ListenStream=",
        f"# uwsgi.socket ({comment(u.socket.for_uwsgi())}): the app socket nginx connects to.",
        f"ListenStream={listen_stream(u.socket)}",
    ]
    if u.http is not None:
        _outside_runtime_dir(spec, "uwsgi.http", u.http)
        lines += [
            f"# uwsgi.http ({comment(u.http.for_uwsgi())}): uWSGI's own HTTP listener.",
            f"ListenStream={listen_stream(u.http)}",
        ]
    lines += [
        "# The queue while the supervisor restarts (uwsgi.listen; it sets it again at start).",
        f"Backlog={u.listen}",
    ]
    unix = u.socket.is_unix or (u.http is not None and u.http.is_unix)
    if unix and spec.nginx.group:
        lines += [
            "# nginx's group (nginx.group) may connect to the socket file; nobody else.",
            f"SocketGroup={unit_value(spec.nginx.group)}",
            "SocketMode=0660",
        ]
    elif unix:
        lines.append("# No nginx.group in the spec: the socket file keeps the unit's group.")
    return "\n".join(lines) + "\n"
