"""Sockets handed to the supervisor by systemd (LISTEN_FDS), and the backlog:
bad input gives one clear line naming the fix, and nothing starts half-way.

systemd is stood in for by a launcher that does what it does before exec:
the sockets at fds 3.., LISTEN_FDS, and LISTEN_PID set to the very process
that then runs the supervisor. (The real socket unit is tested in the
systemd tier.)
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

from harness import SUPERVISOR, Supervised, copy_app, spec_yaml
from kit.net import free_port, http_get, try_get

from supervisor.uwsgi import procs

LAUNCH = """\
import os, sys
fds = [int(f) for f in sys.argv[1].split(",") if f]
for i, fd in enumerate(fds):
    os.dup2(fd, 3 + i)
os.environ["LISTEN_PID"] = str(os.getpid())
os.environ["LISTEN_FDS"] = sys.argv[2]
os.execv(sys.executable, [sys.executable, "-m", "supervisor", "run", sys.argv[3]])
"""


def launch(spec: Path, socks: list[socket.socket], count: str = "") -> subprocess.Popen[str]:
    fds = [s.fileno() for s in socks]
    argv = [sys.executable, "-c", LAUNCH, ",".join(map(str, fds)), count or str(len(fds))]
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    env.pop("NOTIFY_SOCKET", None)
    return subprocess.Popen(
        [*argv, str(spec)], pass_fds=fds, env=env, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True,
    )


def listening_unix(path: Path) -> socket.socket:
    s = socket.socket(socket.AF_UNIX)
    s.bind(str(path))
    s.listen(16)
    return s


def setup(tmp: Path, http_port: int) -> Path:
    app = copy_app("blog", tmp / "app")
    text = spec_yaml(app, tmp / "rt", "blog:app", http_port)
    text = text.replace("uwsgi:\n", f"uwsgi:\n  socket: {tmp / 'app.sock'}\n")
    spec = tmp / "app.yaml"
    spec.write_text(text)
    return spec


def test_a_socket_at_another_address_is_not_used_and_the_warning_names_the_fix(
    short_tmp: Path,
) -> None:
    """A socket unit listening elsewhere than the spec must not take the site down
    (a package upgrade restarts every instance): the spec's address is bound by
    the supervisor instead, with one warning that names the fix."""
    port = free_port()
    spec = setup(short_tmp, port)
    wrong = listening_unix(short_tmp / "other.sock")
    http = socket.create_server(("127.0.0.1", port))
    proc = launch(spec, [wrong, http])
    try:
        from kit.wait import wait_until

        state = short_tmp / "rt" / "state.json"
        wait_until(lambda: state.exists() and "running" in state.read_text(), 60, "running")
        doc = json.loads(state.read_text())
        held = {s["role"]: (s["address"], s["held_by"]) for s in doc["sockets"]}
        assert held == {
            "app": (str(short_tmp / "app.sock"), "supervisor"),
            "http": (f"127.0.0.1:{port}", "systemd"),
        }
        assert http_get(f"127.0.0.1:{port}", "/")[0] == 200
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=60)
    lines = [line for line in err.splitlines() if "does not name" in line]
    assert len(lines) == 1, err
    assert str(short_tmp / "other.sock") in lines[0]
    assert f"set uwsgi.socket: {short_tmp / 'other.sock'}" in lines[0]
    assert f"render socket {spec}" in lines[0]


def test_the_wrong_number_of_sockets_is_refused(short_tmp: Path) -> None:
    spec = setup(short_tmp, free_port())
    app = listening_unix(short_tmp / "app.sock")
    proc = launch(spec, [app], count="3")
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 78, err
    assert "systemd passed 3 sockets (LISTEN_FDS=3)" in err
    assert not procs.instance_pids(short_tmp / "rt")


def test_passed_sockets_are_adopted_and_serve(short_tmp: Path) -> None:
    port = free_port()
    spec = setup(short_tmp, port)
    app = listening_unix(short_tmp / "app.sock")
    http = socket.create_server(("127.0.0.1", port))
    inode = os.stat(short_tmp / "app.sock").st_ino
    proc = launch(spec, [app, http])
    try:
        from kit.wait import wait_until

        wait_until(lambda: http_get(f"127.0.0.1:{port}", "/")[0] == 200, 60, "served")
        doc = json.loads((short_tmp / "rt" / "state.json").read_text())
        held = {s["role"]: s["held_by"] for s in doc["sockets"]}
        assert held == {"app": "systemd", "http": "systemd"}
        assert os.stat(short_tmp / "app.sock").st_ino == inode  # not re-bound
    finally:
        proc.terminate()
        proc.communicate(timeout=60)


def test_a_backlog_over_somaxconn_is_capped_with_a_warning(short_tmp: Path) -> None:
    cap = int(Path("/proc/sys/net/core/somaxconn").read_text())
    app = copy_app("blog", short_tmp / "app")
    text = spec_yaml(app, short_tmp / "rt", "blog:app", free_port())
    text = text.replace("uwsgi:\n", f"uwsgi:\n  listen: {cap + 1000}\n")
    with Supervised(short_tmp, text) as sup:
        sup.start()
        log = sup.log()
        assert f"uwsgi.listen is {cap + 1000} but net.core.somaxconn caps" in log
        assert f"sysctl -w net.core.somaxconn={cap + 1000}" in log
        socks = {s["role"]: s for s in sup.state()["sockets"]}
        assert socks["app"]["backlog"] == cap


def test_check_shows_the_sockets(short_tmp: Path) -> None:
    spec = setup(short_tmp, 8123)
    out = subprocess.run([*SUPERVISOR, "check", str(spec)], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert f"app socket: {short_tmp / 'app.sock'} (backlog 1024), uWSGI's fd://3" in out.stdout


def test_sighup_moves_a_changed_listener_and_keeps_the_others(short_tmp: Path) -> None:
    """A re-read spec with another HTTP port: the new port is bound before the old
    one closes, uWSGI restarts on it, and the unchanged app socket (its queue)
    is the same socket as before."""
    import signal

    from kit.wait import wait_until

    old_port, new_port = free_port(), free_port()
    app = copy_app("blog", short_tmp / "app")
    text = spec_yaml(app, short_tmp / "rt", "blog:app", old_port)
    with Supervised(short_tmp, text) as sup:
        sup.start()
        sock = sup.runtime_dir / "app.sock"
        inode = os.stat(sock).st_ino
        sup.spec.write_text(text.replace(f":{old_port}", f":{new_port}"))
        sup.signal(signal.SIGHUP)
        wait_until(lambda: try_get(f"127.0.0.1:{new_port}", "/"), 60, "the new port")
        assert os.stat(sock).st_ino == inode  # the app socket was kept
        socks = {s["role"]: s["address"] for s in sup.wait_state("running")["sockets"]}
        assert socks == {"app": str(sock), "http": f"127.0.0.1:{new_port}"}
        refused = socket.socket()
        try:
            assert refused.connect_ex(("127.0.0.1", old_port)) != 0  # the old port is closed
        finally:
            refused.close()
