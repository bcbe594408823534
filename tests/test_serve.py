"""Issue: run a Flask app under uWSGI from a spec (real uWSGI, real Flask)."""

from __future__ import annotations

import http.client
import json
import os
import stat
import subprocess
import sys
from pathlib import Path

from harness import SUPERVISOR, Supervised, copy_app, spec_yaml
from kit.net import free_port, http_get
from kit.wait import wait_until

from supervisor.uwsgi.stats import read_stats_raw


def test_module_level_app_is_served_and_check_prints_the_command(short_tmp: Path) -> None:
    app = copy_app("blog", short_tmp / "app")
    port = free_port()
    text = spec_yaml(app, short_tmp / "rt", "blog:app", port)
    spec = short_tmp / "blog.yaml"
    spec.write_text(text)
    check = subprocess.run([*SUPERVISOR, "check", str(spec)], capture_output=True, text=True)
    assert check.returncode == 0, check.stderr
    line = check.stdout.splitlines()[-1]
    assert "--master-fifo" in line and "--stats-no-cores" in line and "--need-app" in line
    assert "--socket fd://3" in line and "--http-socket fd://4" in line  # inherited
    assert f"http socket: 127.0.0.1:{port}, uWSGI's fd://4" in check.stdout
    with Supervised(short_tmp, text, name="blog") as sup:
        sup.start()
        status, body = http_get(f"127.0.0.1:{port}", "/")
        assert status == 200 and body.startswith("v1 ")


def test_factory_app_under_sub_path_builds_prefixed_links(short_tmp: Path) -> None:
    app = copy_app("factory", short_tmp / "app")
    port = free_port()
    text = spec_yaml(app, short_tmp / "rt", "flaskr:create_app()", port, "")
    text = text.replace("uwsgi:\n", "uwsgi:\n  mount: /bbb\n")
    with Supervised(short_tmp, text) as sup:
        sup.start()
        assert http_get(f"127.0.0.1:{port}", "/bbb/") == (200, "factory v1\n")
        assert http_get(f"127.0.0.1:{port}", "/bbb/links") == (200, "index=/bbb/\n")


def test_status_reload_and_private_control_files(short_tmp: Path) -> None:
    app = copy_app("blog", short_tmp / "app")
    port = free_port()
    text = spec_yaml(app, short_tmp / "rt", "blog:app", port)
    with Supervised(short_tmp, text) as sup:
        sup.start()
        http_get(f"127.0.0.1:{port}", "/")
        rt = sup.runtime_dir
        for name in ("master.fifo", "stats.sock"):
            mode = stat.S_IMODE(os.stat(rt / name).st_mode)
            assert mode & 0o077 == 0, f"{name} is {oct(mode)}: must be private to the service user"
        assert stat.S_IMODE(os.stat(rt).st_mode) & 0o044 == 0  # nobody else may list it

        human = sup.cli("status", str(sup.spec))
        assert human.returncode == 0, human.stderr
        assert "supervisor: pid" in human.stdout and "running" in human.stdout
        doc = json.loads(sup.cli("status", "--json", str(sup.spec)).stdout)
        pids_before = {w["pid"] for w in doc["uwsgi"]["workers"]}
        assert len(pids_before) == 2
        for w in doc["uwsgi"]["workers"]:
            assert human.stdout.count(str(w["pid"])) == 1
            assert "cores" not in w or all("vars" not in c for c in w["cores"])
        # A request in flight carrying a secret cookie must not show in the stats.
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=20)
        conn.request("GET", "/slow?s=1.5", headers={"Cookie": "session=hunter2-secret"})
        wait_until(
            lambda: any(
                w["status"] == "busy" for w in read_stats_raw(rt / "stats.sock")["workers"]
            ),
            10,
            "a busy worker",
        )
        assert "hunter2" not in json.dumps(read_stats_raw(rt / "stats.sock"))
        assert conn.getresponse().status == 200
        conn.close()

        reload = sup.cli("reload", str(sup.spec))
        assert reload.returncode == 0, reload.stderr
        after = json.loads(sup.cli("status", "--json", str(sup.spec)).stdout)
        pids_after = {w["pid"] for w in after["uwsgi"]["workers"]}
        assert pids_after and not pids_after & pids_before
        assert after["supervisor"]["generation"] == doc["supervisor"]["generation"] + 1


def test_reload_without_supervisor_writes_the_fifo(short_tmp: Path) -> None:
    """`reload` on a uWSGI whose supervisor is gone still reloads it through the FIFO."""
    app = copy_app("blog", short_tmp / "app")
    port = free_port()
    text = spec_yaml(app, short_tmp / "rt", "blog:app", port)
    with Supervised(short_tmp, text) as sup:
        sup.start()
        before = {w["pid"] for w in read_stats_raw(sup.runtime_dir / "stats.sock")["workers"]}
        assert sup.proc is not None
        sup.proc.kill()  # uWSGI survives its supervisor's SIGKILL
        sup.proc.wait()
        r = sup.cli("reload", str(sup.spec))
        assert r.returncode == 0 and "wrote 'r'" in r.stdout, r.stderr

        def new_workers() -> bool:
            doc = read_stats_raw(sup.runtime_dir / "stats.sock")
            now = {w["pid"] for w in doc["workers"]} if doc else set()
            return bool(now) and not now & before

        wait_until(new_workers, 30, "reloaded workers")


def test_status_when_not_running_says_so(short_tmp: Path) -> None:
    app = copy_app("blog", short_tmp / "app")
    spec = short_tmp / "x.yaml"
    spec.write_text(spec_yaml(app, short_tmp / "rt", "blog:app", free_port()))
    r = subprocess.run([*SUPERVISOR, "status", str(spec)], capture_output=True, text=True)
    assert r.returncode == 3
    assert "supervisor: not running" in r.stdout and "uWSGI: not running" in r.stdout


def test_public_socket_refused_without_opt_in(short_tmp: Path) -> None:
    app = copy_app("blog", short_tmp / "app")
    spec = short_tmp / "x.yaml"
    spec.write_text(
        f"app:\n  module: blog:app\n  chdir: {app}\nuwsgi:\n  socket: 0.0.0.0:7777\n"
        f"runtime_dir: {short_tmp / 'rt'}\n"
    )
    r = subprocess.run([*SUPERVISOR, "run", str(spec)], capture_output=True, text=True, timeout=30)
    assert r.returncode == 78
    assert f"{spec}:5:11: uwsgi.socket:" in r.stderr
    assert "allow_public_socket" in r.stderr
    assert not (short_tmp / "rt").exists()  # nothing started


def test_version_and_help() -> None:
    out = subprocess.run([*SUPERVISOR, "--version"], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.startswith("uwsgi-supervisor ")
    for cmd in ("check", "run", "status", "reload", "render"):
        h = subprocess.run([*SUPERVISOR, cmd, "--help"], capture_output=True, text=True)
        assert h.returncode == 0 and "usage:" in h.stdout
    script = Path(sys.executable).parent / "uwsgi-supervisor"
    assert subprocess.run([str(script), "--help"], capture_output=True).returncode == 0


def test_status_shows_each_socket_its_holder_backlog_and_queue(short_tmp: Path) -> None:
    """The queue is the kernel's own figure (uWSGI's stats say 0 for unix sockets)."""
    import signal
    import socket

    from kit.procs import children

    app = copy_app("blog", short_tmp / "app")
    port = free_port()
    text = spec_yaml(app, short_tmp / "rt", "blog:app", port)
    text = text.replace("uwsgi:\n", "uwsgi:\n  listen: 50\n")
    with Supervised(short_tmp, text) as sup:
        sup.start()
        master = sup.uwsgi_pid()
        frozen = [master, *children(master)]
        for pid in frozen:  # nobody accepts now: connections stay queued
            os.kill(pid, signal.SIGSTOP)
        clients = []
        try:
            for _ in range(7):
                c = socket.socket(socket.AF_UNIX)
                c.connect(str(sup.runtime_dir / "app.sock"))
                clients.append(c)

            def app_socket() -> dict[str, object]:
                doc = json.loads(sup.cli("status", "--json", str(sup.spec)).stdout)
                socks = {s["role"]: s for s in (doc["supervisor"] or {}).get("sockets", [])}
                return socks.get("app") or {}

            queued = wait_until(lambda: app_socket().get("queued") == 7 and app_socket(), 20, "7")
            assert queued["held_by"] == "supervisor" and queued["backlog"] == 50
            assert queued["address"] == str(sup.runtime_dir / "app.sock")
            human = sup.cli("status", str(sup.spec)).stdout
            path = sup.runtime_dir / "app.sock"
            assert f"app socket {path}: held by supervisor, 7 queued of 50" in human
            assert f"http socket 127.0.0.1:{port}: held by supervisor" in human
        finally:
            for pid in frozen:
                os.kill(pid, signal.SIGCONT)
            for c in clients:
                c.close()
