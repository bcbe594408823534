"""Which nginx locations pass requests to the imported app, and what they say.

A location passes to the app when its `uwsgi_pass` (or, for uWSGI's own
HTTP listener, `proxy_pass`) reaches the ini's address, directly or
through an `upstream` block. A named location (`location @bbb`) is
reached through the locations whose `try_files` or `error_page` end in
it, as in the classic sub-path setup:

    location = /bbb { return 301 ...; }
    location /bbb/ { try_files $uri @bbb; }
    location @bbb { uwsgi_pass 127.0.0.1:7777; include uwsgi_params; }

Their prefixes give the spec's `uwsgi.mount`; locations beside them that
serve a directory (`alias`, `root`) give `nginx.static`; `user` gives the
group nginx's workers run as.
"""

from __future__ import annotations

import grp
import pwd
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Optional

from supervisor.importer.nginxconf import Directive, NginxConf
from supervisor.spec.model import Address
from supervisor.spec.values import parse_address

# Directives of a passing location that the rendered include says itself, or
# that the new setup replaces.
_UNDERSTOOD = {"uwsgi_pass", "proxy_pass", "include", "try_files", "uwsgi_modifier1"}
_LOCAL_NAMES = {"localhost", "127.0.0.1", "::1"}


@dataclass(frozen=True)
class Passing:
    """A location that sends requests to the app."""

    location: Directive
    server: Optional[Directive]
    via: Directive  # the uwsgi_pass or proxy_pass
    target: str


@dataclass
class NginxFindings:
    mount: str = "/"
    mount_comments: list[str] = field(default_factory=list)
    static: list[tuple[str, str, str]] = field(default_factory=list)  # prefix, dir, comment
    group: Optional[tuple[str, str]] = None  # nginx workers' group, and why
    dropped: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


class NothingPasses(ValueError):
    """No location of the config reaches the app."""


def _locations(directives: list[Directive], server: Optional[Directive]) -> Iterator[
    tuple[Directive, Optional[Directive]]
]:
    for d in directives:
        if d.name == "server" and d.block is not None:
            yield from _locations(d.block, d)
        elif d.name == "location" and d.block is not None:
            yield d, server
            yield from _locations(d.block, server)
        elif d.block is not None:
            yield from _locations(d.block, server)


def _upstreams(conf: NginxConf) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for d in conf.root.walk():
        if d.name == "upstream" and d.args and d.block is not None:
            found[d.args[0]] = [s.args[0] for s in d.block if s.name == "server" and s.args]
    return found


def _address(target: str) -> Optional[Address]:
    """An nginx pass target as an address: unix:/path, host:port, [v6]:port."""
    target = re.sub(r"^(uwsgi|suwsgi|https?)://", "", target)
    if target.startswith("unix:"):
        target = "unix:" + target[5:].split(":", 1)[0]  # proxy_pass http://unix:/p:/uri
    else:
        target = target.split("/", 1)[0]
    try:
        return parse_address(target)
    except ValueError:
        return None


def reaches(target: Address, listen: Address) -> bool:
    """True when connecting to `target` reaches a socket bound at `listen`."""
    if listen.is_unix or target.is_unix:
        return listen.path == target.path
    if listen.port != target.port:
        return False
    if listen.host in ("", "0.0.0.0", "::"):
        return True
    local = {listen.host, target.host} <= _LOCAL_NAMES
    return listen.host == target.host or local


def passing(conf: NginxConf, listen: Address, directive: str) -> list[Passing]:
    """The locations whose `directive` (uwsgi_pass or proxy_pass) reaches `listen`."""
    upstreams = _upstreams(conf)
    found: list[Passing] = []
    for location, server in _locations(conf.root.block or [], None):
        for d in location.block or []:
            if d.name != directive or not d.args:
                continue
            name = re.sub(r"^(uwsgi|suwsgi|https?)://", "", d.args[0]).split("/", 1)[0]
            targets = upstreams.get(name, [d.args[0]])
            for target in targets:
                address = _address(target)
                if address is not None and reaches(address, listen):
                    found.append(Passing(location, server, d, target))
                    break
    return found


def every_pass(conf: NginxConf) -> list[str]:
    """Every uwsgi_pass and proxy_pass of the config, for a message."""
    return [
        f"{d.name} {' '.join(d.args)} ({d.where})"
        for d in conf.root.walk()
        if d.name in ("uwsgi_pass", "proxy_pass")
    ]


def worker_group(conf: NginxConf) -> Optional[tuple[str, str]]:
    """The group nginx's workers run as, from its `user` directive."""
    for d in conf.root.block or []:
        if d.name == "user" and d.args:
            if len(d.args) > 1:
                return d.args[1], f"from {d.where.label}: {d.text()}"
            try:
                gid = pwd.getpwnam(d.args[0]).pw_gid
                return grp.getgrgid(gid).gr_name, f"from {d.where.label}: {d.text()}"
            except KeyError:
                return d.args[0], f"from {d.where.label}: {d.text()} (its group of that name)"
    return None


def _entries(p: Passing, locations: list[tuple[Directive, Optional[Directive]]]) -> list[Directive]:
    """The locations a request enters to reach `p`: itself, or those naming it."""
    args = p.location.args
    if not args or not args[0].startswith("@"):
        return [p.location]
    name = args[0]
    entries = []
    for location, server in locations:
        if server is not p.server:
            continue
        for d in location.block or []:
            if d.name in ("try_files", "error_page") and d.args and d.args[-1] == name:
                entries.append(location)
    return entries


def _prefix(location: Directive) -> tuple[Optional[str], str]:
    """The URL prefix a location covers ("/bbb"), or None, and a remark."""
    args = location.args
    modifier, path = (args[0], args[1]) if len(args) > 1 else ("", args[0] if args else "")
    if modifier in ("", "^~"):
        return path.rstrip("/") or "/", ""
    if modifier == "=":
        return path.rstrip("/") or "/", "an exact-match location"
    if modifier in ("~", "~*"):
        literal = re.match(r"\^(/[A-Za-z0-9_.~-]*(?:/[A-Za-z0-9_.~-]+)*)", path)
        if literal:
            return literal[1].rstrip("/") or "/", "read from a regex location's literal start"
    return None, f"cannot tell the URL prefix of {location.text()}"


def _shown(address: Address) -> str:
    if not address.is_unix and address.host in ("", "0.0.0.0", "::"):
        return f"port {address.port} of this host"
    return address.for_nginx()


def analyze(
    conf: NginxConf, socket: Optional[Address], http: Optional[Address]
) -> NginxFindings:
    """What the config says about the app at `socket` (uwsgi_pass) or `http` (proxy_pass).

    Raises NothingPasses when no location reaches either.
    """
    found: list[Passing] = []
    wanted = []
    if socket is not None:
        found += passing(conf, socket, "uwsgi_pass")
        wanted.append(f"uwsgi_pass to {_shown(socket)}")
    if http is not None:
        found += passing(conf, http, "proxy_pass")
        wanted.append(f"proxy_pass to {_shown(http)}")
    if not found:
        seen = every_pass(conf)
        what = "; it has " + ", ".join(seen) if seen else "; it passes nothing to uWSGI"
        raise NothingPasses(
            f"{conf.file}: no location does {' or '.join(wanted) or 'a pass to the app'}{what}."
            " Give the config that serves this app, or import without --nginx"
        )
    findings = NginxFindings(group=worker_group(conf))
    findings.warnings += conf.notes
    locations = list(_locations(conf.root.block or [], None))
    prefixes: dict[str, list[str]] = {}
    for p in found:
        _remarks(p, findings)
        entries = _entries(p, locations)
        if not entries:
            findings.warnings.append(
                f"{p.location.where}: {p.location.text()} passes to the app, but no location"
                " of its server leads there (try_files or error_page naming it)"
            )
        for entry in entries:
            prefix, remark = _prefix(entry)
            label = f"{entry.where.label}: {entry.text()}" + (f" ({remark})" if remark else "")
            if prefix is None:
                findings.warnings.append(f"{entry.where}: {remark}")
                continue
            prefixes.setdefault(prefix, []).append(label)
            _leftovers(entry, findings)
        if p.location not in entries:
            _leftovers(p.location, findings)
    _choose_mount(prefixes, findings)
    _redirect(found, locations, findings)
    _static(found, locations, findings)
    return findings


def _remarks(p: Passing, findings: NginxFindings) -> None:
    address = _address(p.target)
    if address is not None and not address.is_unix and address.host not in _LOCAL_NAMES:
        findings.warnings.append(
            f"{p.via.where}: nginx connects to {p.target}: if nginx runs on another host,"
            " it cannot reach the app's new socket; run nginx on this host"
        )
    if p.via.name == "proxy_pass":
        findings.mount_comments.append(
            f"{p.via.where.label}: {p.via.text()} spoke HTTP to uWSGI's HTTP listener; the"
            " rendered include speaks the uwsgi protocol to uwsgi.socket instead"
        )


def _leftovers(location: Directive, findings: NginxFindings) -> None:
    for d in location.block or []:
        if d.name == "try_files" and d.args and d.args[0] == "$uri":
            findings.mount_comments.append(
                f"{d.where.label}: {d.text()} served files found under the server's root"
                " first; the rendered include passes every request to the app (use"
                " nginx.static for files)"
            )
        elif d.name == "uwsgi_modifier1" or (
            d.name == "uwsgi_param" and d.args[:1] == ["SCRIPT_NAME"]
        ):
            findings.mount_comments.append(
                f"{d.where.label}: {d.text().rstrip(';')}: replaced by uwsgi.mount (uWSGI's"
                " mount and manage-script-name set SCRIPT_NAME)"
            )
        elif d.name not in _UNDERSTOOD and d.name != "location":
            findings.dropped.append(
                f"{d.where.label}: {d.text()} (in {location.text()}): the rendered include"
                " has its own location; put it in your server block if it is still needed"
            )


def _choose_mount(prefixes: dict[str, list[str]], findings: NginxFindings) -> None:
    if "/" in prefixes or not prefixes:
        chosen = "/"
    elif len(prefixes) == 1:
        chosen = next(iter(prefixes))
    else:
        shown = ", ".join(sorted(prefixes))
        findings.warnings.append(
            f"the app is reached at several URL prefixes ({shown}); a spec mounts it at one:"
            " the mount is left at / (set uwsgi.mount to the one you want)"
        )
        findings.dropped.append(f"nginx mounts at {shown}: one spec mounts the app at one prefix")
        chosen = "/"
    findings.mount = chosen
    for label in prefixes.get(chosen, []):
        findings.mount_comments.insert(0, f"from {label}")


def _redirect(
    found: list[Passing],
    locations: list[tuple[Directive, Optional[Directive]]],
    findings: NginxFindings,
) -> None:
    """`location = /bbb { return 301 ... }`: the rendered include has the same."""
    servers = {id(p.server) for p in found}
    for location, server in locations:
        redirects = any(d.name == "return" for d in location.block or [])
        exact = location.args == ["=", findings.mount] != ["=", "/"]
        if id(server) in servers and exact and redirects:
            findings.mount_comments.append(
                f"{location.where.label}: {location.text()}: the rendered include"
                f" redirects {findings.mount} to {findings.mount}/ too"
            )


def _static(
    found: list[Passing],
    locations: list[tuple[Directive, Optional[Directive]]],
    findings: NginxFindings,
) -> None:
    """Locations next to the app's that nginx serves from a directory."""
    servers = {id(p.server) for p in found}
    passing_ids = {id(p.location) for p in found}
    for location, server in locations:
        if id(server) not in servers or id(location) in passing_ids:
            continue
        args = location.args
        if not args or (len(args) > 1 and args[0] != "^~") or args[-1].startswith("@"):
            continue
        prefix = args[-1].rstrip("/")
        where = {d.name: d for d in location.block or [] if d.name in ("alias", "root") and d.args}
        if not prefix or "alias" not in where and "root" not in where:
            continue
        if "alias" in where:
            directory = where["alias"].args[0]
        else:
            directory = where["root"].args[0].rstrip("/") + prefix
        label = f"from {location.where.label}: {location.text()}"
        findings.static.append((prefix, directory.rstrip("/") or "/", label))
        for d in location.block or []:
            if d.name not in ("alias", "root"):
                findings.dropped.append(
                    f"{d.where.label}: {d.text()} (in {location.text()}): the rendered"
                    " include serves nginx.static with alias only; put it in your server"
                    " block if it is still needed"
                )
