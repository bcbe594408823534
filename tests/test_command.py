"""uWSGI's command line and environment, built from a spec.

The supervisor's control of uWSGI depends on some of these options (the
FIFO, the stats socket, --need-app); others decide whether a reload loads
new code at all (lazy-apps for chain reloads).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from fakes import make_health_spec, make_spec

from supervisor.spec.model import (
    SYSTEMD_VARS,
    Address,
    AppSpec,
    HealthSpec,
    ReloadMode,
    Spec,
    WatchSpec,
    runtime_paths,
)
from supervisor.uwsgi.command import (
    INSTANCE_MARK,
    INSTANCE_TAG,
    LOGTO,
    SHOWN_FDS,
    Command,
    SocketFds,
    build_command,
    chain_refusal,
    chain_reload_loads_new_code,
    entry_source,
    write_entry,
)


def spec_with(reload: ReloadMode = ReloadMode.GRACEFUL, **uwsgi: Any) -> Spec:
    base = make_spec()
    return replace(base, uwsgi=replace(base.uwsgi, **uwsgi), watch=WatchSpec(reload=reload))


def command(spec: Spec, **kw: Any) -> Command:
    return build_command(spec, runtime_paths(spec).instance("1"), **kw)


def value(argv: list[str], flag: str) -> str:
    """The value given after `flag`; fails the test if the flag is missing or repeated."""
    assert argv.count(flag) == 1, f"{flag} appears {argv.count(flag)} times in {argv}"
    return argv[argv.index(flag) + 1]


def test_options_the_supervisor_relies_on_are_always_there() -> None:
    argv = command(make_spec()).argv
    assert argv[0] == "/usr/bin/uwsgi"
    for flag in ("--strict", "--master", "--need-app", "--stats-no-cores"):
        assert argv.count(flag) == 1, flag
    assert value(argv, "--master-fifo") == "/run/t/master-1.fifo"
    assert value(argv, "--stats") == "/run/t/stats-1.sock"
    assert value(argv, "--chdir") == "/srv/blog"
    assert value(argv, "--pythonpath") == "/srv/blog"
    assert value(argv, "--processes") == "2"
    assert value(argv, "--wsgi-file") == "/run/t/wsgi_entry.py"
    # A second instance (a swap candidate) gets its own control files.
    other = build_command(make_spec(), runtime_paths(make_spec()).instance("2")).argv
    assert value(other, "--master-fifo") == "/run/t/master-2.fifo"
    assert value(other, "--stats") == "/run/t/stats-2.sock"


def test_one_app_socket_and_http_as_an_inherited_http_socket_not_a_router() -> None:
    plain = command(make_spec()).argv
    assert plain.count("--socket") == 1
    assert _listeners(plain, "--http-socket") == []
    argv = command(spec_with(http=Address(host="127.0.0.1", port=8080))).argv
    assert argv.count("--socket") == 1 and _listeners(argv, "--http-socket") == ["fd://4"]
    # `--http` would start a router process that every reload replaces,
    # resetting the requests in flight.
    assert "--http" not in argv


def test_chain_mode_loads_the_app_in_each_worker_from_the_current_release() -> None:
    chain = command(spec_with(ReloadMode.CHAIN)).argv
    assert "--lazy-apps" in chain
    assert value(chain, "--hook-post-fork") == "chdir:/srv/blog"
    assert value(chain, "--chdir") == "/run/t"  # the master never sits in a release
    assert value(chain, "--pythonpath") == "/srv/blog"
    for mode in (ReloadMode.GRACEFUL, ReloadMode.SWAP):
        argv = command(spec_with(mode)).argv
        assert "--lazy-apps" not in argv and "--hook-post-fork" not in argv
        assert value(argv, "--chdir") == "/srv/blog"


def test_sockets_are_the_inherited_descriptors_whatever_the_address() -> None:
    """uWSGI binds nothing: the sockets outlive every master, so connections queue."""
    for address in (
        Address(path=Path("/run/t/app.sock")),
        Address(host="127.0.0.1", port=8001),
        Address(host="::1", port=8001),
    ):
        argv = command(spec_with(socket=address), fds=SocketFds(7)).argv
        assert value(argv, "--socket") == "fd://7", address
    http = spec_with(http=Address(host="127.0.0.1", port=8080))
    assert _listeners(command(http, fds=SocketFds(7, 9)).argv, "--http-socket") == ["fd://9"]
    with pytest.raises(ValueError, match="uwsgi.http"):
        command(http, fds=SocketFds(7))
    # `check` shows the numbers a socket unit passes.
    assert value(command(http).argv, "--socket") == "fd://3"
    assert _listeners(command(http).argv, "--http-socket") == ["fd://4"]
    # Two masters share the inherited sockets during a swap: nothing to reuse.
    assert "--reuse-port" not in command(spec_with(ReloadMode.SWAP, http=http.uwsgi.http)).argv


def _listeners(argv: list[str], flag: str) -> list[str]:
    """The shared listening sockets an option names (fd://N), not private ones."""
    return [b for a, b in zip(argv, argv[1:]) if a == flag and b.startswith("fd://")]


def test_each_master_has_a_private_health_socket_of_its_own() -> None:
    """The health check must reach this master's workers, never another's."""
    spec = make_health_spec()
    argv = command(spec).argv
    private = [b for a, b in zip(argv, argv[1:]) if a == "--http-socket"]
    assert private == ["/run/t/health-1.sock"]
    other = build_command(spec, runtime_paths(spec).instance("2"), SHOWN_FDS).argv
    assert "/run/t/health-2.sock" in other
    off = replace(spec, health=HealthSpec(enabled=False))
    assert "--http-socket" not in command(off).argv


def test_a_sub_path_mounts_the_app_with_script_name() -> None:
    argv = command(spec_with(mount="/bbb")).argv
    assert value(argv, "--mount") == "/bbb=/run/t/wsgi_entry.py"
    assert "--manage-script-name" in argv
    assert "--wsgi-file" not in argv
    assert "--manage-script-name" not in command(make_spec()).argv


def test_pass_through_options_in_order_with_flags() -> None:
    options = (
        ("harakiri", "30"),
        ("enable-threads", "true"),
        ("single-interpreter", "false"),
        ("max-requests", "1000"),
        ("listen", "1024"),
    )
    argv = command(spec_with(options=options)).argv
    start = argv.index("--harakiri")
    assert argv[start:] == [
        "--harakiri",
        "30",
        "--enable-threads",
        "--max-requests",
        "1000",
        "--listen",
        "1024",
    ]
    assert "--single-interpreter" not in argv  # a flag turned off is left out


def test_threads_virtualenv_and_logto() -> None:
    base = make_spec()
    spec = replace(
        base,
        app=replace(base.app, virtualenv=Path("/srv/venv")),
        uwsgi=replace(base.uwsgi, threads=4),
        logto=Path("/var/log/blog/uwsgi.log"),
    )
    argv = command(spec).argv
    assert value(argv, "--threads") == "4"
    assert value(argv, "--virtualenv") == "/srv/venv"
    assert value(argv, "--logto") == "/var/log/blog/uwsgi.log"
    assert "--log-maxsize" not in argv  # the user's file: their rotation
    assert argv.count("--log-master") == 1  # so that `l` moves the workers' lines too
    plain = command(base).argv
    assert "--threads" not in plain and "--virtualenv" not in plain
    # Our own log file, which we tail into the journal: capped.
    assert value(plain, "--logto") == "/run/t/uwsgi-1.log"
    assert int(value(plain, "--log-maxsize")) > 0
    assert value(plain, "--log-backupname") == "/run/t/uwsgi-1.log.old"
    assert "--log-master" not in plain
    # Workers close their inherited descriptor of the logto file (the entry shim).
    assert command(spec).env[LOGTO] == "/var/log/blog/uwsgi.log" and LOGTO not in command(base).env


def test_environment_has_app_env_and_nothing_of_systemds_or_uwsgi_options() -> None:
    environ = {
        "PATH": "/usr/bin:/bin",
        "LANG": "C.UTF-8",
        "DATABASE_URL": "postgres://from-the-unit",
        "NOTIFY_SOCKET": "/run/systemd/notify",
        "WATCHDOG_USEC": "10000000",
        "WATCHDOG_PID": "1",
        "LISTEN_FDS": "1",
        "LISTEN_PID": "1",
        "LISTEN_FDNAMES": "app",
        "UWSGI_PROCESSES": "64",
        "UWSGI_INI": "/tmp/evil.ini",
    }
    before = dict(environ)
    base = make_spec()
    spec = replace(
        base,
        app=replace(base.app, env=(("DATABASE_URL", "sqlite:///blog.db"), ("FLASK_DEBUG", "0"))),
    )
    env = command(spec, environ=environ).env
    for name in SYSTEMD_VARS:
        assert name not in env, name
    assert not [k for k in env if k.startswith("UWSGI_")]
    assert env["DATABASE_URL"] == "sqlite:///blog.db"  # app.env wins
    assert env["FLASK_DEBUG"] == "0"
    assert env["PATH"] == "/usr/bin:/bin" and env["LANG"] == "C.UTF-8"
    assert env[INSTANCE_MARK] == "/run/t"  # finds leftovers in /proc
    assert env[INSTANCE_TAG] == "1"
    assert environ == before  # the supervisor's own environment is untouched


def test_chain_reload_loads_new_code_only_in_chain_mode() -> None:
    assert chain_reload_loads_new_code(spec_with(ReloadMode.CHAIN))
    assert not chain_reload_loads_new_code(spec_with(ReloadMode.GRACEFUL))
    assert not chain_reload_loads_new_code(spec_with(ReloadMode.SWAP))


def test_chain_refusal_names_the_spec_the_setting_and_the_fix() -> None:
    message = chain_refusal(spec_with(ReloadMode.SWAP))
    assert message.startswith("chain reload refused: t runs with watch.reload: swap")
    assert "lazy-apps" in message
    assert "reload without --chain" in message
    assert "set watch.reload: chain in /etc/uwsgi-supervisor/t.yaml" in message


def test_entry_shim_calls_a_factory_once_and_is_rewritten_only_when_it_changes(
    tmp_path: Path,
) -> None:
    base = replace(make_spec(), runtime_dir=tmp_path)
    factory = replace(base, app=AppSpec("blog.wsgi", "create_app", True, Path("/srv/blog")))
    assert "application = _module.app\n" in entry_source(base)
    assert "application = _module.create_app()\n" in entry_source(factory)
    assert "import_module('blog.wsgi')" in entry_source(factory)

    path = write_entry(base)
    assert path == tmp_path / "wsgi_entry.py"
    inode = path.stat().st_ino
    write_entry(base)
    assert path.stat().st_ino == inode  # unchanged: not replaced under a loading uWSGI
    write_entry(factory)
    assert path.read_text() == entry_source(factory)
    assert [p.name for p in tmp_path.iterdir()] == ["wsgi_entry.py"]  # no temp files left
