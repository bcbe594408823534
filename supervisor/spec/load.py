"""Load a YAML spec into a frozen `Spec`, reporting every problem at once.

Each problem names the file, line and column, the dotted key and what to do
(see `source.Problem`). The layout of the spec is documented key by key
in etc/example.yaml.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Optional, Union

from yaml.nodes import Node, ScalarNode

from supervisor.spec.access import report_access
from supervisor.spec.convert import at_least, duration, from_text, number_in
from supervisor.spec.health import health_section
from supervisor.spec.hostchecks import (
    absolute_path,
    check_runtime_dir,
    default_runtime_dir,
    default_state_dir,
    existing_dir,
    existing_group,
    existing_path,
    existing_user,
    file_in_existing_dir,
    host_problem,
    module_problem,
    runtime_dir_path,
    uwsgi_binary,
    virtualenv_dir,
)
from supervisor.spec.metrics import metrics_section
from supervisor.spec.model import (
    DEFAULT_WATCH_INCLUDE,
    NEVER_WATCHED,
    RELOAD_MODES,
    Address,
    AppSpec,
    BackoffSpec,
    NginxSpec,
    ReloadMode,
    RestartSpec,
    RuntimePaths,
    Spec,
    UwsgiSpec,
    WatchSpec,
)
from supervisor.spec.options import option_name, option_values
from supervisor.spec.scalars import NULL, as_bool, as_text, describe, usable_text
from supervisor.spec.sections import Section
from supervisor.spec.source import Problem, Report, SpecError, read_yaml
from supervisor.spec.values import (
    check_env_name,
    check_name,
    format_duration,
    is_loopback,
    listen_scope,
    normalise_mount,
    parse_address,
    parse_app_target,
    parse_duration,
)

__all__ = ["Problem", "SpecError", "load_spec", "parse_duration"]


TOP_KEYS = (
    "name", "user", "group", "app", "uwsgi", "runtime_dir", "logto",
    "nginx", "watch", "restart", "start", "reload", "stop", "health", "metrics", "state_dir",
)  # fmt: skip
SECTION_KEYS = {
    "app": ("module", "chdir", "virtualenv", "env"),
    "uwsgi": (
        "binary", "processes", "threads", "socket", "allow_public_socket", "listen",
        "http", "allow_public_http", "mount", "options",
    ),
    "nginx": ("group", "static"),
    "watch": (
        "enabled", "paths", "include", "exclude", "debounce", "max_wait",
        "reload", "preflight", "preflight_timeout", "poll",
    ),
    "restart": ("backoff", "reset_after", "max_attempts"),
    "health": (
        "enabled", "path", "expect", "host", "timeout", "passes", "bake", "interval", "failures",
    ),
    "restart.backoff": ("initial", "max", "factor", "jitter"),
    "metrics": ("listen",),
    "start": ("timeout",),
}  # fmt: skip
# A section's key written at the top level: point to where it belongs.
ELSEWHERE = {
    key: f"{section}.{key}"
    for section, keys in SECTION_KEYS.items()
    for key in keys
    if key not in TOP_KEYS and section != "start"
}

def load_spec(
    path: Union[str, Path], environ: Optional[Mapping[str, str]] = None, *, tree: bool = True
) -> Spec:
    """The Spec in the YAML file at `path`; SpecError lists every problem found.

    `environ` (default: os.environ) supplies RUNTIME_DIRECTORY,
    XDG_RUNTIME_DIR and PATH for the defaults that depend on them.

    `tree=False` defers the app tree (app.chdir, app.virtualenv, the module
    file, watch.paths): they must still be absolute paths, but may be missing,
    because at run time a missing tree is a deploy in progress (`rm -rf app &&
    git clone ...`), not a config error. `tree.tree_problems(spec)` then says
    what is missing. `check` loads with tree=True and reports it all.
    """
    path = Path(path)
    env = os.environ if environ is None else environ
    text, root_node = read_yaml(path)
    report = Report(path, text)
    root = Section(report, "", root_node, TOP_KEYS, root_node, ELSEWHERE)
    spec = _spec(root, path, env, tree)
    # Values of a spec with problems are placeholders: they never escape.
    report.raise_if_any()
    return spec


def _spec(root: Section, path: Path, env: Mapping[str, str], tree: bool) -> Spec:
    name = _name(root, path)
    given_runtime_dir = root.get("runtime_dir", from_text(runtime_dir_path), None, nullable=True)
    runtime_dir = given_runtime_dir or default_runtime_dir(name, env)
    if given_runtime_dir is None and root.ok("runtime_dir"):
        try:
            check_runtime_dir(runtime_dir)
        except (ValueError, OSError) as exc:
            root.problem("runtime_dir", f"the default {host_problem(exc)}; set runtime_dir:")
    u = root.section("uwsgi", SECTION_KEYS["uwsgi"])
    uwsgi = _uwsgi(u, runtime_dir, env)
    socket = uwsgi.socket if u.ok("socket") else None  # None: bad, already reported
    a = root.section("app", SECTION_KEYS["app"], "add app: with module: and chdir:")
    app = _app(a, tree)
    user = root.get("user", from_text(existing_user), None, nullable=True)
    group = root.get("group", from_text(existing_group), None, nullable=True)
    if root.ok("user", "group"):
        report_access(u, uwsgi, a if tree else None, app, user, group)
    return Spec(
        path=Path(os.path.abspath(path)),
        name=name,
        app=app,
        uwsgi=uwsgi,
        runtime_dir=runtime_dir,
        logto=root.get("logto", from_text(file_in_existing_dir), None, nullable=True),
        user=user,
        group=group,
        watch=_watch(root.section("watch", SECTION_KEYS["watch"]), socket, tree),
        restart=_restart(root.section("restart", SECTION_KEYS["restart"])),
        nginx=_nginx(root.section("nginx", SECTION_KEYS["nginx"]), socket),
        health=health_section(root.section("health", SECTION_KEYS["health"])),
        metrics=metrics_section(root.section("metrics", SECTION_KEYS["metrics"])),
        state_dir=root.get("state_dir", from_text(runtime_dir_path), None, nullable=True)
        or default_state_dir(name, env),
        start_timeout=_timeout(root, "start", Spec.start_timeout),
        reload_timeout=_timeout(root, "reload", Spec.reload_timeout),
        stop_timeout=_timeout(root, "stop", Spec.stop_timeout),
    )


# ---- sections -----------------------------------------------------------


def _name(root: Section, path: Path) -> str:
    if root.has("name"):
        return root.get("name", from_text(check_name), path.stem)
    try:
        return check_name(path.stem)
    except ValueError as exc:
        root.problem("name", f"no name given, and the file's name will not do: {exc}; set name:")
        return path.stem


def _app(app: Section, tree: bool) -> AppSpec:
    target = app.get(
        "module", from_text(parse_app_target), None, required="e.g. module: 'blog:app'"
    )
    chdir = app.get(
        "chdir",
        from_text(existing_dir if tree else absolute_path),
        None,
        required="the app's directory, e.g. chdir: /srv/blog/current",
    )
    virtualenv = app.get(
        "virtualenv", from_text(virtualenv_dir if tree else absolute_path), None, nullable=True
    )
    env = app.get_pairs("env", check_env_name, _env_value)
    if tree and target is not None and chdir is not None and app.ok("virtualenv"):
        problem = module_problem(target[0], chdir, virtualenv)
        if problem is not None:
            app.problem("module", problem)
    module, callable_, factory = target or ("", "", False)
    return AppSpec(module, callable_, factory, chdir or Path("/"), virtualenv, env)


def _env_value(name: str, node: Node) -> str:
    # The text as written: `DEBUG: no` means "no" and `V: 1.10` means "1.10".
    if not isinstance(node, ScalarNode):
        raise ValueError(f"expected text, got {describe(node)}")
    if node.tag == NULL:
        raise ValueError(f"has no value (YAML reads it as null); for an empty one write {name}: ''")
    return usable_text(str(node.value))


def _uwsgi(u: Section, runtime_dir: Path, env: Mapping[str, str]) -> UwsgiSpec:
    binary = u.get("binary", as_text, None, nullable=True)
    found = ""
    if u.ok("binary"):
        try:
            found = uwsgi_binary(binary, env.get("PATH"))
        except ValueError as exc:
            u.problem("binary", str(exc))
    socket, allow_public_socket = _listener(u, "socket", "allow_public_socket", _PUBLIC_SOCKET)
    http, allow_public_http = _listener(u, "http", "allow_public_http", _PUBLIC_HTTP)
    return UwsgiSpec(
        binary=found,
        socket=socket or Address(path=RuntimePaths(runtime_dir).app_socket),
        processes=u.get("processes", at_least(1, MAX_PROCESSES, _WHY_WORKERS), UwsgiSpec.processes),
        listen=u.get("listen", at_least(1, MAX_LISTEN, _WHY_LISTEN), UwsgiSpec.listen),
        threads=u.get("threads", at_least(1, MAX_THREADS, _WHY_WORKERS), UwsgiSpec.threads),
        allow_public_socket=allow_public_socket,
        http=http,
        allow_public_http=allow_public_http,
        mount=u.get("mount", from_text(normalise_mount), UwsgiSpec.mount),
        options=tuple(
            (name, value)
            for name, values in u.get_pairs("options", option_name, option_values)
            for value in values
        ),
    )


MAX_ATTEMPTS = 1_000_000
# Bounds on uWSGI's numbers. uWSGI reads them as C ints, so a huge one wraps
# around; well before that, each worker is a whole copy of the app and uWSGI
# sets aside shared memory for every worker and every thread (core) at start,
# so past a thousand of either is a typo, not a plan.
MAX_PROCESSES = 1024
MAX_THREADS = 1024
_WHY_WORKERS = "each worker is a whole copy of the app, and uWSGI sizes its shared memory by them"
# listen(2) takes an int, and the kernel caps every queue at net.core.somaxconn,
# which older kernels keep to 16 bits.
MAX_LISTEN = 65535
_WHY_LISTEN = "the kernel caps every listen queue at net.core.somaxconn, at most 65535"


_PUBLIC_SOCKET = (
    "the uwsgi protocol lets anyone who can reach the socket run code on this host. "
    "Use a unix socket (leave uwsgi.socket out for the default) or 127.0.0.1:PORT; "
    "set uwsgi.allow_public_socket: true only if a firewall keeps everyone else out"
)
_PUBLIC_HTTP = (
    "anyone who can reach it talks to uWSGI directly, without nginx in front. "
    "Use 127.0.0.1:PORT; set uwsgi.allow_public_http: true if you really mean it"
)


def _listener(u: Section, key: str, allow_key: str, why: str) -> tuple[Optional[Address], bool]:
    """An address and its opt-in; refused when not loopback and not opted in."""
    address = u.get(key, from_text(parse_address), None, nullable=True)
    allowed = u.get(allow_key, as_bool, False)  # opt-in: off unless said
    if address is not None and not is_loopback(address) and not allowed and u.ok(allow_key):
        u.problem(key, f"{address.for_uwsgi()} listens on {listen_scope(address)}: {why}")
    return address, allowed


def _nginx(n: Section, socket: Optional[Address]) -> NginxSpec:
    group = n.get("group", from_text(existing_group), None, nullable=True)
    if group is not None and socket is not None and not socket.is_unix:
        n.problem(
            "group",
            f"only applies to a unix socket (it lets nginx's group connect to the socket "
            f"file), but uwsgi.socket is TCP ({socket.for_uwsgi()}); remove nginx.group",
        )
    static = n.get_pairs("static", _static_prefix, lambda _, node: existing_dir(as_text(node)))
    return NginxSpec(group=group, static=static)


def _static_prefix(prefix: str) -> str:
    prefix = normalise_mount(prefix)
    if prefix == "/":
        raise ValueError("a static prefix of '/' would hide the app; use one like /static")
    return prefix


def _watch(w: Section, socket: Optional[Address], tree: bool) -> WatchSpec:
    include = w.get_list("include", _glob)
    if include == ():
        w.problem(
            "include",
            "is empty, so no change would reload the app; "
            "to turn reloading off, set watch.enabled: false",
        )
    extra = w.get_list("exclude", _glob) or ()
    debounce = w.get("debounce", duration(), WatchSpec.debounce)
    max_wait = w.get("max_wait", duration(), WatchSpec.max_wait)
    if w.ok("debounce", "max_wait") and max_wait < debounce:
        w.problem(
            "max_wait" if w.has("max_wait") else "debounce",
            f"max_wait ({format_duration(max_wait)}) is shorter than debounce "
            f"({format_duration(debounce)}); make max_wait at least as long as debounce",
        )
    reload = w.get("reload", _reload_mode, WatchSpec.reload)
    return WatchSpec(
        enabled=w.get("enabled", as_bool, WatchSpec.enabled),
        paths=w.get_list("paths", from_text(existing_path if tree else absolute_path)) or (),
        include=include or DEFAULT_WATCH_INCLUDE,
        # Adding to the defaults, never replacing them, keeps logs and
        # bytecode from ever triggering a reload.
        exclude=NEVER_WATCHED + tuple(g for g in extra if g not in NEVER_WATCHED),
        debounce=debounce,
        max_wait=max_wait,
        reload=reload,
        preflight=w.get("preflight", as_bool, WatchSpec.preflight),
        preflight_timeout=w.get(
            "preflight_timeout", duration(positive=True), WatchSpec.preflight_timeout
        ),
        poll=w.get("poll", as_bool, WatchSpec.poll),
    )


def _glob(node: Node) -> str:
    pattern = as_text(node)
    if not pattern:
        raise ValueError("an empty pattern matches nothing; remove it")
    return pattern


def _reload_mode(node: Node) -> ReloadMode:
    mode = as_text(node)
    names = [m.value for m in RELOAD_MODES]
    if mode not in names:
        close = difflib.get_close_matches(mode, names, n=1)
        hint = f"did you mean '{close[0]}'? " if close else ""
        raise ValueError(f"unknown reload mode '{mode}'; {hint}use one of {', '.join(names)}")
    return ReloadMode(mode)


def _restart(r: Section) -> RestartSpec:
    b = r.section("backoff", SECTION_KEYS["restart.backoff"])
    initial = b.get("initial", duration(positive=True), BackoffSpec.initial)
    maximum = b.get("max", duration(positive=True), BackoffSpec.max)
    if b.ok("initial", "max") and maximum < initial:
        b.problem(
            "max" if b.has("max") else "initial",
            f"max ({format_duration(maximum)}) is shorter than initial "
            f"({format_duration(initial)}); make max at least as long as initial",
        )
    backoff = BackoffSpec(
        initial=initial,
        max=maximum,
        factor=b.get(
            "factor",
            number_in(1, 10, "each delay is the last one times factor"),
            BackoffSpec.factor,
        ),
        jitter=b.get("jitter", number_in(0, 1, "a fraction of each delay"), BackoffSpec.jitter),
    )
    return RestartSpec(
        backoff=backoff,
        reset_after=r.get("reset_after", duration(), RestartSpec.reset_after),
        max_attempts=r.get(
            "max_attempts", at_least(1, MAX_ATTEMPTS, "null never gives up"), None, nullable=True
        ),
    )


def _timeout(root: Section, key: str, default: float) -> float:
    section = root.section(key, SECTION_KEYS["start"])
    return section.get("timeout", duration(positive=True), default)
