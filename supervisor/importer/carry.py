"""The rest of an ini: workers, users, logs, what the supervisor now owns, and
options passed through to uWSGI as they were (uwsgi.options).

Nothing is dropped silently: each key is carried, said to be the
supervisor's now, or listed as not carried over with the reason.
"""

from __future__ import annotations

import difflib
import re
from typing import Optional

from supervisor.importer.context import Context, source
from supervisor.importer.ini import Entry
from supervisor.importer.options import FLAGS, is_true
from supervisor.spec.options import option_name

_RELOAD = "the supervisor watches the code (watch:) and reloads only onto code that imports"
_STATS = "the stats socket is <runtime_dir>/stats.sock (private): uwsgi-supervisor status SPEC"
_PID = "the supervisor knows uWSGI's pid: uwsgi-supervisor status SPEC"
# Options the supervisor sets itself (or replaces), and what to know about that.
OWNED = {
    "master": "the supervisor always runs uWSGI with a master process",
    "master-fifo": "the supervisor's FIFO is <runtime_dir>/master.fifo; instead of"
    " `echo r > FIFO`: uwsgi-supervisor reload SPEC (it waits until the new code serves)",
    "stats": _STATS, "stats-server": _STATS, "stats-http": _STATS,
    "stats-no-cores": "always set (cores would show request headers)",
    "need-app": "always set: an app that fails to import is a failure",
    "strict": "always set: an unknown option fails the start",
    "memory-report": "always set",
    "vacuum": "the supervisor removes the files and sockets it made",
    "die-on-term": "the supervisor stops uWSGI with `q` on its FIFO; SIGTERM to the"
    " supervisor (systemctl stop) stops gracefully",
    "pidfile": _PID, "pidfile2": _PID, "safe-pidfile": _PID, "safe-pidfile2": _PID,
    "manage-script-name": "set with uwsgi.mount",
    "py-tracebacker": "the supervisor sets its own: a hung worker's Python stacks go to its log",
    "py-autoreload": _RELOAD, "py-auto-reload": _RELOAD, "python-autoreload": _RELOAD,
    "python-auto-reload": _RELOAD, "touch-reload": _RELOAD, "touch-chain-reload": _RELOAD,
    "touch-workers-reload": _RELOAD, "fs-reload": _RELOAD, "fs-brutal-reload": _RELOAD,
}  # fmt: skip
_PYTHON_PLUGIN = re.compile(r"python[0-9]*")
# uWSGI's cheaper and idle modes leave workers unspawned (pid 0, status
# "cheap" in the stats), and the supervisor calls the app up (READY, a
# finished reload) only when every worker serves: it would never be.
_CHEAP = re.compile(r"cheaper(-.*)?|cheap|idle|die-on-idle")
_WHY_CHEAP = (
    "it leaves workers unspawned (\"cheap\"), and the supervisor calls the app up only"
    " once every worker serves: start and every reload would time out; uwsgi.processes"
    " sets the workers"
)
MAX_WORKERS = 1024


def map_rest(ctx: Context) -> None:
    _workers(ctx)
    _lazy(ctx)
    _users(ctx)
    _logs(ctx)
    _plugins(ctx)
    for key, why in OWNED.items():
        for entry in ctx.take(key):
            ctx.own(entry, why)
    for entry in ctx.ini.entries:
        if entry.key not in ctx.used and not entry.placeholder:
            _carry(ctx, entry)


def _number(ctx: Context, key: str, entry: Optional[Entry], low: int, high: int) -> None:
    if entry is None:
        return
    # uWSGI reads numbers with atoi(): the leading digits, the rest ignored.
    match = re.match(r"\s*\+?([0-9]+)", entry.value)
    if match is None or not low <= int(match[1]) <= high:
        ctx.drop(entry, f"not a whole number from {low} to {high}; set {key} by hand")
        return
    if match.end() != len(entry.value.rstrip()):
        ctx.draft.warnings.append(
            f"{entry.where}: uWSGI read '{entry.value}' as {int(match[1])} (its leading digits)"
        )
    ctx.draft.set(key, int(match[1]), source(entry))


def _workers(ctx: Context) -> None:
    _number(ctx, "uwsgi.processes", ctx.last("processes", "workers"), 1, MAX_WORKERS)
    _number(ctx, "uwsgi.threads", ctx.last("threads"), 1, MAX_WORKERS)
    _number(ctx, "uwsgi.listen", ctx.last("listen"), 1, 65535)


def _lazy(ctx: Context) -> None:
    entry = ctx.last("lazy-apps", "lazy")
    if entry is None or not is_true(entry.value):
        if entry is not None:
            ctx.own(entry, "off: the default")
        return
    ctx.draft.set(
        "watch.reload",
        "chain",
        source(entry),
        "each worker loads the app itself: the supervisor sets lazy-apps for chain",
        "reloads. If the app is safe to load once and fork (no connections opened at",
        "import), the default swap is better: new code is health-checked, rolled back.",
    )


def _users(ctx: Context) -> None:
    for key, spec_key in (("uid", "user"), ("gid", "group")):
        entry = ctx.last(key)
        if entry is not None:
            ctx.draft.set(
                spec_key, entry.value, source(entry),
                "uWSGI runs as it; under systemd, `uwsgi-supervisor render unit SPEC` is the"
                " service's drop-in for it",
            )  # fmt: skip
    if "user" in ctx.draft.settings and "group" not in ctx.draft.settings:
        ctx.draft.warnings.append(
            "uid without gid: uWSGI kept root's group; the spec's user runs with its own group"
        )


def _logs(ctx: Context) -> None:
    logto = ctx.last("logto", "logto2")
    for entry in ctx.take("daemonize", "daemonize2"):
        why = "the supervisor never daemonizes uWSGI (it would lose sight of it)"
        if logto is None and entry.value.strip():
            logto = entry
            why += "; uWSGI logged to this file, kept as logto"
        ctx.own(entry, why)
    if logto is not None:
        ctx.draft.set(
            "logto", ctx.path(logto.value), source(logto),
            "Without it, uWSGI's log goes to the journal. Under the shipped unit, a file",
            "outside runtime_dir needs ReadWritePaths= in the service's drop-in.",
        )  # fmt: skip


def _plugins(ctx: Context) -> None:
    for entry in ctx.take("plugins", "plugin"):
        names = [n.strip() for n in re.split(r"[,\s]+", entry.value) if n.strip()]
        python = [n for n in names if _PYTHON_PLUGIN.fullmatch(n)]
        rest = [n for n in names if n not in python]
        if python:
            ctx.own(
                entry,
                "the uWSGI the supervisor runs (pip's) has Python built in; with a"
                " distribution's uwsgi, set uwsgi.binary and add the plugin to uwsgi.options",
            )
        if rest:
            ctx.draft.add_option("plugins", ",".join(rest), source(entry))


def _carry(ctx: Context, entry: Entry) -> None:
    """Pass an option through to uWSGI, or say why not."""
    key = entry.key
    if key in ctx.ini.referenced and (ctx.known is None or key not in ctx.known):
        return  # a variable of the ini, expanded where it is used
    if ctx.known is not None and key not in ctx.known:
        close = difflib.get_close_matches(key.replace("_", "-").lower(), ctx.known, n=1)
        hint = f" (did you mean {close[0]}?)" if close else ""
        ctx.drop(
            entry,
            f"uWSGI has no option '{key}'{hint} and ignored it; the supervisor's uWSGI runs"
            " with --strict and would refuse it",
        )
        return
    if _CHEAP.fullmatch(key):
        ctx.drop(entry, _WHY_CHEAP)
        return
    try:
        option_name(key)
    except ValueError as exc:
        ctx.drop(entry, str(exc))
        return
    if key in FLAGS:
        ctx.draft.add_option(key, is_true(entry.value), source(entry))
    elif not entry.value:
        ctx.drop(entry, "has no value")
    else:
        if re.search(r"\s[;#]", entry.value):
            ctx.draft.warnings.append(
                f"{entry.where}: uWSGI read '{entry.value}' as the whole value (an ini has no"
                " comments after a value); carried as it was"
            )
        ctx.draft.add_option(key, entry.value, source(entry))
