"""Where the app listens: uWSGI's socket, its HTTP listener, who may connect.

The uwsgi protocol runs code for whoever reaches the socket (uWSGI 2.0
honours UWSGI_FILE and exec:// in request variables), so an address other
hosts can reach (`:7777`, `0.0.0.0:7777`, `[::]:7777`, a LAN address) is
never carried over: the spec gets a unix socket, and both the spec and
stderr say why. Loopback addresses and unix sockets carry over.
"""

from __future__ import annotations

import grp
from typing import Optional

from supervisor.importer.context import Context, source
from supervisor.importer.ini import Entry
from supervisor.spec.model import Address
from supervisor.spec.values import is_loopback, listen_scope, parse_address

RUN_DIR = "/run/uwsgi-supervisor"
NGINX_GROUPS = ("www-data", "nginx")  # Debian's and RHEL's nginx workers


def socket_unit_path(name: str) -> str:
    """Where the shipped socket unit uwsgi-supervisor@NAME.socket listens."""
    return f"{RUN_DIR}/{name}.sock"


def _parse(ctx: Context, entry: Entry) -> Optional[Address]:
    value = entry.value.split(",", 1)[0].strip()  # `addr,modifier`: uWSGI's extra fields
    if value and ":" not in value and not value.startswith(("/", "@", "=")):
        value = ctx.path(value)  # a relative unix socket path
    try:
        return parse_address(value)
    except ValueError as exc:
        ctx.draft.warnings.append(f"{entry.where}: {entry.text}: {exc}")
        return None


def map_socket(ctx: Context, name: str) -> Optional[Address]:
    """Set uwsgi.socket; returns the ini's own socket address (what nginx passes to)."""
    entries = ctx.take("socket", "uwsgi-socket")
    for extra in entries[1:]:
        ctx.drop(extra, "a spec has one app socket (nginx passes to uwsgi.socket)")
    entry = entries[0] if entries else None
    given = _parse(ctx, entry) if entry is not None else None
    said = [source(entry)] if entry is not None else []
    if ctx.choices.socket is not None:
        ctx.draft.set("uwsgi.socket", ctx.choices.socket, "from --socket", *said)
        return given
    proposal = socket_unit_path(name)
    why_unix = [
        f"{proposal}: where the shipped socket unit (uwsgi-supervisor@{name}.socket)"
        " listens; without it the supervisor binds it itself. nginx connects through"
        " nginx.group."
    ]
    if entry is None:
        ctx.draft.set(
            "uwsgi.socket", proposal, "the ini has no uwsgi socket (nginx passes to this one).",
            *why_unix,
        )  # fmt: skip
    elif given is None:
        ctx.draft.set(
            "uwsgi.socket", proposal, *said, "NOT CARRIED OVER: not an address a spec takes;",
            *why_unix,
        )  # fmt: skip
        ctx.draft.warnings.append(f"{entry.where}: socket replaced by {proposal}")
    elif not is_loopback(given):
        scope = listen_scope(given)
        ctx.draft.set(
            "uwsgi.socket",
            proposal,
            *said,
            f"NOT CARRIED OVER: it listens on {scope}, and the uwsgi protocol runs code for"
            " anyone who reaches it (UWSGI_FILE, exec://...): whoever can connect owns this"
            f" host. A unix socket instead; for TCP, 127.0.0.1:{given.port} would do (nginx"
            " on this host reaches it, no other host does).",
            *why_unix,
        )
        ctx.draft.warnings.append(
            f"{entry.where}: {entry.text}: NOT carried over: it listens on {scope}, and the"
            " uwsgi protocol lets anyone who connects run code on this host; the spec uses"
            f" {proposal} (or pass --socket 127.0.0.1:{given.port})"
        )
    else:
        unit = []
        if given.path is not None and str(given.path) != proposal:
            unit = [
                f"The shipped socket unit listens at {proposal}: for this path, install"
                " `uwsgi-supervisor render socket SPEC` as its drop-in."
            ]
        ctx.draft.set("uwsgi.socket", given.for_uwsgi(), *said, *unit)
        if given.path is not None and str(given.path).startswith(("/tmp/", "/var/tmp/")):
            ctx.draft.warnings.append(
                f"{entry.where}: the socket is under {given.path.parent}: the shipped unit has"
                " PrivateTmp=, so nginx would not see it there; consider"
                f" --socket {proposal}"
            )
    return given


def map_http(ctx: Context) -> Optional[Address]:
    """Set uwsgi.http from `http`/`http-socket`; returns the ini's own address."""
    entries = ctx.take("http", "http-socket")
    for extra in entries[1:]:
        ctx.drop(extra, "a spec has one HTTP listener (uwsgi.http)")
    if not entries:
        return None
    entry = entries[0]
    given = _parse(ctx, entry)
    if given is None:
        ctx.drop(entry, "not an address a spec takes")
        return None
    comments = [source(entry)]
    if entry.key == "http":
        comments += [
            "uWSGI's HTTP router process becomes an HTTP socket its workers answer",
            "(kept open across restarts). For the site, nginx passes to uwsgi.socket.",
        ]
    if not is_loopback(given):
        local = f"127.0.0.1:{given.port}"
        comments += [
            f"NOT CARRIED OVER: it listened on {listen_scope(given)}, reachable without",
            "nginx in front; loopback instead (uwsgi.allow_public_http opts in).",
        ]
        ctx.draft.warnings.append(
            f"{entry.where}: {entry.text}: NOT carried over: it listens on"
            f" {listen_scope(given)}; the spec's uwsgi.http is {local}"
        )
        ctx.draft.set("uwsgi.http", local, *comments)
    else:
        ctx.draft.set("uwsgi.http", given.for_uwsgi(), *comments)
    return given


def map_socket_access(ctx: Context, nginx_group: Optional[tuple[str, str]]) -> None:
    """nginx.group for a unix socket, from chown-socket, nginx's user, or the host."""
    chown = ctx.last("chown-socket")
    chmod = ctx.last("chmod-socket")
    socket = str(ctx.draft.settings["uwsgi.socket"].value)
    if not socket.startswith("/"):
        for entry in (chown, chmod):
            if entry is not None:
                ctx.own(entry, "for unix sockets only; the spec's socket is TCP")
        return
    if chmod is not None:
        last = chmod.value.strip()[-1:]
        world = last.isdigit() and int(last) & 2  # others may write: connect
        ctx.own(
            chmod,
            "the supervisor makes the socket 0660, for its group nginx.group"
            + ("; the old mode let every local user run code as the app" if world else ""),
        )
    group, why = None, ""
    if chown is not None and ":" in chown.value:
        group, why = chown.value.split(":", 1)[1], source(chown)
        ctx.own(chown, "the socket's group is nginx.group")
    elif chown is not None:
        ctx.own(chown, "the socket belongs to the service user; its group is nginx.group")
    if group is None and nginx_group is not None:
        group, why = nginx_group
        why = f"nginx's workers' group, {why}"
    if group is None:
        for candidate in NGINX_GROUPS:
            try:
                grp.getgrnam(candidate)
            except KeyError:
                continue
            group = candidate
            why = "the usual group of nginx's workers (it exists here): check nginx.conf's user"
            break
    if group is None:
        ctx.draft.warnings.append(
            "no group for nginx to connect to the socket: set nginx.group to nginx's group"
        )
        return
    ctx.draft.set("nginx.group", group, why, "nginx's workers must be in it to connect.")
