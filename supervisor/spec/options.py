"""uwsgi.options: what a spec may pass through to uWSGI, and how it is read.

Options the supervisor sets itself are refused with the spec key to use
instead; options that would undo its guarantees (a listener past the
loopback check, daemonizing, privileges, other configs, file modes) are
refused with the reason; the rest pass through as --key value, in order.
"""

from __future__ import annotations

from typing import Optional

from yaml.nodes import Node, ScalarNode, SequenceNode

from supervisor.spec.scalars import BOOL, NULL, as_bool, describe, usable_text
from supervisor.spec.sections import NodeError

# Options the supervisor sets itself; a spec may not pass them through
# `uwsgi.options`, because the supervisor's control of uWSGI depends on them.
OWNED_OPTIONS = frozenset(
    {
        "listen",
        "reuse-port",
        "master",
        "master-fifo",
        "stats",
        "stats-server",
        "stats-no-cores",
        "stats-http",
        "need-app",
        "socket",
        "uwsgi-socket",
        "http",
        "http-socket",
        "chdir",
        "module",
        "wsgi-file",
        "mount",
        "manage-script-name",
        "virtualenv",
        "home",
        "venv",
        "pythonpath",
        "processes",
        "workers",
        "threads",
        "lazy-apps",
        "lazy",
        "logto",
        "daemonize",
        "pidfile",
        "chmod-socket",
        "chown-socket",
        "vacuum",
        "ini",
        "yaml",
        "json",
        "xml",
        "die-on-term",
        "uid",
        "gid",
        "env",
        "hook-post-fork",
    }
)

# Options that would undo what the supervisor guarantees, by kind, and why.
_LISTENERS = (
    "suwsgi-socket", "ssl-socket", "http11-socket", "https-socket", "fastcgi-socket",
    "fastcgi-nph-socket", "scgi-socket", "scgi-nph-socket", "raw-socket", "puwsgi-socket",
    "shared-socket", "zerg", "zerg-server", "https", "http-to", "fastrouter", "rawrouter",
    "sslrouter", "forkptyrouter", "tuntap-router", "udp", "snmp", "emperor",
    "fastrouter-subscription-server", "http-subscription-server", "subscription-server",
    "legion", "metrics-dir",
)  # fmt: skip
_DETACHING = ("daemonize", "daemonize2", "pidfile", "pidfile2", "safe-pidfile", "safe-pidfile2")
_PRIVILEGE = (
    "chroot", "jail", "cap", "unshare", "unshare2", "master-as-root", "immediate-uid",
    "immediate-gid", "add-gid", "emperor-tyrant", "setns", "setns-socket",
)  # fmt: skip
_CONFIGS = (
    "include", "inherit", "ini", "yaml", "yml", "json", "xml", "sqlite3", "ldap", "config",
    "for-readline", "declare-option", "declare-option2", "plugins-dir", "autoload",
)  # fmt: skip
_FILE_MODES = ("umask", "logfile-chmod", "logfile-chown", "chmod-socket", "chown-socket")
REFUSED_OPTIONS: dict[str, str] = {
    **dict.fromkeys(
        _LISTENERS,
        "it makes uWSGI listen on its own, past the supervisor's loopback check and its"
        " sockets (the uwsgi protocol runs code for whoever reaches it); use uwsgi.socket"
        " or uwsgi.http",
    ),
    **dict.fromkeys(
        _DETACHING,
        "it detaches uWSGI from the supervisor, which could then neither see it exit nor"
        " stop it (a restart loop of masters that fight for the socket)",
    ),
    **dict.fromkeys(
        _PRIVILEGE,
        "who uWSGI runs as, and with which privileges, is the spec's user and group",
    ),
    **dict.fromkeys(
        _CONFIGS,
        "it loads configuration or code from elsewhere, which the spec check cannot see;"
        " put the options in uwsgi.options itself",
    ),
    **dict.fromkeys(
        _FILE_MODES,
        "it changes who may open uWSGI's files and sockets (the FIFO, the stats socket,"
        " the logs) that are private to the service user; nginx.group opens the app"
        " socket to nginx",
    ),
}

# Owned uWSGI options that a spec key covers: where to say it instead.
OPTION_KEYS = {
    "socket": "uwsgi.socket", "uwsgi-socket": "uwsgi.socket",
    "http": "uwsgi.http", "http-socket": "uwsgi.http",
    "processes": "uwsgi.processes", "workers": "uwsgi.processes", "listen": "uwsgi.listen",
    "threads": "uwsgi.threads", "mount": "uwsgi.mount", "manage-script-name": "uwsgi.mount",
    "chdir": "app.chdir", "module": "app.module", "wsgi-file": "app.module",
    "virtualenv": "app.virtualenv", "home": "app.virtualenv", "venv": "app.virtualenv",
    "env": "app.env", "logto": "logto", "lazy-apps": "watch.reload: chain",
    "lazy": "watch.reload: chain",
    "uid": "user", "gid": "group", "chmod-socket": "nginx.group", "chown-socket": "nginx.group",
}  # fmt: skip


def option_name(name: str) -> str:
    canonical = name.lstrip("-").replace("_", "-").lower()
    if canonical in OPTION_KEYS:  # a spec key says it: point there
        where = OPTION_KEYS[canonical]
        raise ValueError(
            f"'{name}' is managed by uwsgi-supervisor; remove it and set {where} instead"
        )
    if canonical in REFUSED_OPTIONS:
        raise ValueError(f"'{name}' is refused: {REFUSED_OPTIONS[canonical]}")
    if canonical in OWNED_OPTIONS:
        raise ValueError(f"'{name}' is managed by uwsgi-supervisor; remove it")
    if name.startswith("-"):
        raise ValueError(f"write option names without dashes: '{name.lstrip('-')}'")
    if not canonical.replace("-", "").isalnum():
        raise ValueError(f"'{name}' is not a uWSGI option name")
    return canonical


def option_values(name: str, node: Node) -> tuple[str, ...]:
    """One value per occurrence of the option: a list repeats it."""
    if isinstance(node, SequenceNode):
        if not node.value:
            raise ValueError("is an empty list; remove the option or give it values")
        return tuple(option_value(item, item) for item in node.value)
    return (option_value(node, None),)


def option_value(node: Node, item: Optional[Node]) -> str:
    def bad(message: str) -> ValueError:
        return NodeError(item, message) if item is not None else ValueError(message)

    if not isinstance(node, ScalarNode):
        raise bad(
            f"an option's value must be text, a number, true/false or a list of those, "
            f"not {describe(node)}"
        )
    if node.tag == NULL:
        raise bad("has no value; for an option that is a flag, write true")
    if node.tag == BOOL:
        return "true" if as_bool(node) else "false"
    # Numbers go through as written: uWSGI parses them itself (010 stays "010").
    try:
        return usable_text(str(node.value))
    except ValueError as exc:
        raise bad(str(exc)) from None
