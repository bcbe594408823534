"""Sockets that outlive every uWSGI master (real supervisor, uWSGI, nginx, wrk).

The supervisor binds the listening sockets once and every master inherits
them, so under `wrk -t2 -c32` through nginx:
- a `kill -9` of the master loses only what was in flight (at most
  processes x threads requests per crash): connections that arrive while no
  master runs wait in the socket's queue;
- a swap reload loses nothing over a unix socket, a loopback TCP socket or
  the development HTTP listener;
- chain and graceful reloads keep the same socket (same inode).
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from harness import Supervised, copy_app
from kit import wrk
from kit.app import set_version
from kit.load import Load
from kit.net import free_port, serves
from kit.wait import wait_until

from supervisor.render import render_nginx
from supervisor.spec.load import load_spec

if TYPE_CHECKING:
    from kit.nginx import Nginx

pytestmark = pytest.mark.nginx

PROCESSES, THREADS = 4, 1


def spec_text(tmp: Path, app: Path, socket: str = "", mode: str = "swap", http: int = 0) -> str:
    uwsgi = f"uwsgi:\n  processes: {PROCESSES}\n"
    if socket:
        uwsgi += f"  socket: {socket}\n"
    if http:
        uwsgi += f"  http: 127.0.0.1:{http}\n"
    return (
        f'app:\n  module: "blog:app"\n  chdir: {app}\n{uwsgi}'
        f"runtime_dir: {tmp / 'rt'}\nwatch:\n  reload: {mode}\n"
    )


@contextmanager
def front(tmp: Path, sup: Supervised) -> Iterator[Nginx]:
    """nginx in front of the app socket; yields it (its port, its error log)."""
    from kit.nginx import running_nginx

    with running_nginx(tmp / "nginx", render_nginx(load_spec(sup.spec))) as nginx:
        yield nginx


def hammer(port: int, seconds: int) -> Any:
    """wrk for at most `seconds`; each test stops it (wrk.stop) once what it watches is over."""
    return wrk.start(port, seconds, threads=2, connections=32)


def inode(path: Path) -> int:
    return os.stat(path).st_ino


def test_kill_9_of_the_master_loses_only_what_was_in_flight(short_tmp: Path) -> None:
    app = copy_app("blog", short_tmp / "app")
    with Supervised(short_tmp, spec_text(short_tmp, app, mode="graceful")) as sup:
        sup.start()
        sock = sup.runtime_dir / "app.sock"
        before = inode(sock)
        with front(short_tmp, sup) as nginx:
            port = nginx.port
            load = hammer(port, 14)
            time.sleep(2.0)
            for crash in range(3):
                old = sup.uwsgi_pid()
                os.kill(old, signal.SIGKILL)
                wait_until(
                    lambda o=old: sup.state().get("uwsgi_pid") not in (None, o)
                    and sup.state().get("state") == "running",
                    30,
                    f"a new master after crash {crash + 1}",
                )
                time.sleep(2.5)
            r = wrk.stop(load)
        assert inode(sock) == before  # the same socket throughout
        in_flight = 3 * PROCESSES * THREADS
        print(f"kill -9 x3, wrk -c32 via nginx: {r['requests']} requests, {r['failed']} failed")
        assert r["requests"] > 1000
        assert r["failed"] <= in_flight, r


@pytest.mark.parametrize("kind", ["unix", "tcp"])
def test_swap_loses_nothing_over_unix_and_tcp_sockets(short_tmp: Path, kind: str) -> None:
    app = copy_app("blog", short_tmp / "app")
    socket = f"127.0.0.1:{free_port()}" if kind == "tcp" else ""
    with Supervised(short_tmp, spec_text(short_tmp, app, socket, "swap")) as sup:
        sup.start()
        with front(short_tmp, sup) as nginx:
            port = nginx.port
            load = hammer(port, 14)
            time.sleep(1.5)
            swap_three_times(sup, app, port)
            r = wrk.stop(load)
        got = f"{r['requests']} requests, {r['failed']} failed"
        print(f"swap x3 over {kind}, wrk -c32 via nginx: {got}")
        assert sup.state()["generation"] == 4
        assert r["requests"] > 1000
        assert r["failed"] == 0, r


def test_swap_loses_nothing_on_the_development_http_listener(short_tmp: Path) -> None:
    """Hammered directly, as a developer would. uWSGI's HTTP socket closes the
    connection after each response, which wrk counts as a read error, so the
    load here is 16 threads, each request on a new connection."""
    app = copy_app("blog", short_tmp / "app")
    port = free_port()
    with Supervised(short_tmp, spec_text(short_tmp, app, "", "swap", port)) as sup:
        sup.start()
        with Load(port, threads=16, limit=60) as load:
            time.sleep(1.5)
            swap_three_times(sup, app, port)
        r = load.result
        print(f"swap x3 on the HTTP listener, 16 threads: {r.ok} ok, {r.failed} failed")
        assert sup.state()["generation"] == 4
        assert r.ok > 500
        assert r.failed == 0, r.errors


def swap_three_times(sup: Supervised, app: Path, port: int) -> None:
    for version in ("v2", "v3", "v4"):
        set_version(app / "blog.py", version)
        wait_until(lambda v=version: serves(port, v), 60, f"{version} served")
        sup.wait_state("running")
        time.sleep(1.0)


@pytest.mark.parametrize("mode", ["chain", "graceful"])
def test_chain_and_graceful_reloads_keep_the_socket(short_tmp: Path, mode: str) -> None:
    app = copy_app("blog", short_tmp / "app")
    with Supervised(short_tmp, spec_text(short_tmp, app, mode=mode)) as sup:
        sup.start()
        sock = sup.runtime_dir / "app.sock"
        before = inode(sock)
        with front(short_tmp, sup) as nginx:
            port = nginx.port
            load = hammer(port, 10)
            time.sleep(1.5)
            for version in ("v2", "v3"):
                set_version(app / "blog.py", version)
                wait_until(lambda v=version: serves(port, v), 60, f"{version} served")
                sup.wait_state("running")
                time.sleep(1.0)
            r = wrk.stop(load)
        print(f"{mode} x2 under wrk -c32 via nginx: {r['requests']} requests, {r['failed']} failed")
        assert inode(sock) == before  # `r` re-execs the master: the socket stays
        assert r["requests"] > 500
        if mode == "chain":
            assert r["failed"] == 0, (r, nginx.problems(), sup.log()[-3000:])


def test_supervisor_killed_and_started_again_without_systemd(short_tmp: Path) -> None:
    """Without a socket unit nothing but uWSGI holds the socket across the
    supervisor's own restart: the new supervisor adopts the uWSGI it finds
    serving (and takes its sockets), so no connection is refused."""
    app = copy_app("blog", short_tmp / "app")
    with Supervised(short_tmp, spec_text(short_tmp, app, mode="graceful")) as sup:
        sup.start()
        old_master = sup.uwsgi_pid()
        with front(short_tmp, sup) as nginx:
            port = nginx.port
            load = hammer(port, 10)
            time.sleep(2.0)
            assert sup.proc is not None
            sup.proc.kill()  # SIGKILL: uWSGI survives its supervisor
            sup.proc.wait()
            sup.start(wait_ready=False)  # a new `uwsgi-supervisor run` on the same spec
            sup.notify.wait_for("READY", count=2, timeout=60)
            time.sleep(1.0)  # the adopted master goes on serving
            r = wrk.stop(load)
        assert sup.uwsgi_pid() == old_master and f"adopted uWSGI pid {old_master}" in sup.log()
        print(
            f"supervisor SIGKILLed and started again, no socket unit: {r['requests']} requests,"
            f" {r['failed']} failed"
        )
        assert r["requests"] > 500 and r["failed"] == 0, r
