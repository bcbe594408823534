"""The socket unit keeps each app's socket open through restarts and package upgrades.

Real systemd 252 (tests/sysd.py) with the shipped units, Debian's nginx on the host in front
(the include is what ``uwsgi-supervisor render nginx`` prints), and a bounded load of GETs
through nginx (tests/kit/load.py: every request a new connection, so a refused or reset
connection to the app socket would be a failed request) the whole time:

* ``systemctl restart uwsgi-supervisor@APP``, 10 times, each waited for: 0 failed requests, and
  the socket is the same one before and after (the kernel's socket inode, from /proc/net, held
  by systemd, PID 1 inside, and by every new supervisor; for a unix socket also the file's
  inode); over the shipped socket unit's unix socket, and over a TCP socket on 127.0.0.1 that a
  ``render socket`` drop-in makes the socket unit hold;
* ``dpkg -i`` of a newer build of the package over the installed one (this checkout twice, the
  second with a bumped version: a real dpkg upgrade, old prerm then new postinst), which
  restarts the running instance on the new version: 0 failed, same socket;
* with the service stopped, a connection starts it again (socket activation); stopping the
  socket unit stops both;
* a socket unit that listens where the spec does not (the spec without ``uwsgi.socket``, the
  mistake a user makes first): the app still starts and serves at the spec's own address (a
  package upgrade restarts every instance: this must not take a site down), and the journal
  carries one warning with the fix.

nginx and the app share the host's network namespace (the harness makes none), so nginx reaches
the TCP socket on 127.0.0.1 as it would on a server. The unix socket lives in the namespace's
own /run: nginx (on the host, as root) reaches it as ``/proc/<systemd's pid>/root/run/...``, the
rendered include's path with that prefix; the socket's permissions (root:www-data 0660) are
checked inside instead: www-data connects, nobody is refused.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import pytest
from kit.deb import build_deb
from kit.load import Load, LoadResult
from kit.net import free_port, http_get
from kit.nginx import running_nginx
from kit.wait import wait_until
from sysd import REPO, UNIT_DIR, VENV_BIN, Systemd, boot_or_skip, shipped_template

from supervisor import __version__

pytestmark = [pytest.mark.systemd, pytest.mark.slow]

SUPERVISOR = str(VENV_BIN / "uwsgi-supervisor")
PACKAGED = "/usr/bin/uwsgi-supervisor"
RESTARTS = 10
RESTART_PACE = 2.1  # seconds between restarts: at most 5 starts in any 10 s
THREADS = 4  # load threads; the machine has 2 cores, shared with uWSGI, nginx and systemd
HELLO = """\
import os

def app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [("v1 pid=%d\\n" % os.getpid()).encode()]
"""
# This host is a container image whose /usr/sbin/policy-rc.d (exit 101) forbids maintainer
# scripts to start or restart services; a server has none. Removed inside (the overlay) only.
NO_POLICY = ["rm", "-f", "/usr/sbin/policy-rc.d"]


@dataclass(frozen=True)
class App:
    name: str
    socket: Optional[str]  # uwsgi.socket; None: the spec's default (in the runtime directory)

    @property
    def unit(self) -> str:
        return f"uwsgi-supervisor@{self.name}.service"

    @property
    def socket_unit(self) -> str:
        return f"uwsgi-supervisor@{self.name}.socket"

    @property
    def spec_path(self) -> str:
        return f"/etc/uwsgi-supervisor/{self.name}.yaml"

    def spec(self) -> str:
        socket = f"  socket: {self.socket}\n" if self.socket else ""
        return (
            f'app:\n  module: "hello:app"\n  chdir: /srv/{self.name}\n'
            f"uwsgi:\n  processes: 2\n{socket}"
        )

    def files(self) -> dict[str, str]:
        return {self.spec_path: self.spec(), f"/srv/{self.name}/hello.py": HELLO}


UNIX = App("rsunix", "/run/uwsgi-supervisor/rsunix.sock")  # the shipped socket unit, as is
TCP = App("rstcp", f"127.0.0.1:{free_port()}")  # a render socket drop-in
MISMATCH = App("mismatch", None)  # /run/uwsgi-supervisor/mismatch/app.sock: not the unit's


# --- the listening socket, seen from the host ---------------------------------------------------


def listening_inode(address: str) -> Optional[int]:
    """The kernel's inode of the socket listening at a unix path or at 127.0.0.1:PORT."""
    if address.startswith("/"):
        with open("/proc/net/unix") as f:
            next(f)
            for line in f:
                fields = line.split()
                # Num RefCount Protocol Flags Type St Inode Path; __SO_ACCEPTCON: listening
                if len(fields) == 8 and fields[7] == address and int(fields[3], 16) & 0x10000:
                    return int(fields[6])
        return None
    host, _, port = address.rpartition(":")
    assert host == "127.0.0.1", address
    local = f"0100007F:{int(port):04X}"
    with open("/proc/net/tcp") as f:
        next(f)
        for line in f:
            fields = line.split()
            if fields[1] == local and fields[3] == "0A":  # TCP_LISTEN
                return int(fields[9])
    return None


def holds(host_pid: int, inode: int) -> bool:
    """Whether the process has the socket open."""
    for fd in os.listdir(f"/proc/{host_pid}/fd"):
        try:
            if os.readlink(f"/proc/{host_pid}/fd/{fd}") == f"socket:[{inode}]":
                return True
        except OSError:
            continue
    return False


def main_host_pid(sd: Systemd, unit: str) -> int:
    """The host pid of the unit's MainPID (a namespace pid)."""
    main = int(sd.show(unit, "MainPID")["MainPID"])
    for pid in sd.host_pids_in_unit(unit):
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        nspid = re.search(r"^NSpid:\s.*?(\d+)$", status, re.M)
        if nspid and int(nspid.group(1)) == main:
            return pid
    raise AssertionError(f"MainPID {main} of {unit} not found in its cgroup")


@dataclass(frozen=True)
class SocketState:
    inode: int  # the kernel's socket
    file_inode: Optional[int]  # the unix socket's file
    listening_since: str  # the socket unit's ActiveEnterTimestampMonotonic


def socket_state(sd: Systemd, app: App, address: str, path: Optional[str] = None) -> SocketState:
    """The app's listening socket now; asserts systemd and the supervisor both hold it."""
    inode = listening_inode(address)
    assert inode is not None, f"nothing listens on {address}"
    assert holds(sd.pid, inode), f"systemd (PID 1 inside) does not hold socket {inode}"
    assert holds(main_host_pid(sd, app.unit), inode), "the supervisor did not adopt the socket"
    file_inode = None
    if path is not None:
        file_inode = int(sd.run(["stat", "-c", "%i", path], check=True).stdout)
    shown = sd.show(app.socket_unit, "ActiveState", "ActiveEnterTimestampMonotonic")
    assert shown["ActiveState"] == "active", shown
    return SocketState(inode, file_inode, shown["ActiveEnterTimestampMonotonic"])


def served_more(load: Load, count: int = 20, timeout: float = 30) -> None:
    """Wait until `count` more requests succeeded (the new instance serves)."""
    ok = load.result.ok
    wait_until(lambda: load.result.ok >= ok + count, timeout, f"{count} more requests served")


def report(what: str, r: LoadResult, before: SocketState, after: SocketState) -> str:
    total = r.ok + r.failed
    line = (
        f"{what}: {r.failed} failed of {total} requests (worst {r.worst:.2f}s); socket inode"
        f" {before.inode} -> {after.inode}"
    )
    if before.file_inode is not None:
        line += f", file inode {before.file_inode} -> {after.file_inode}"
    return line


# --- restarts ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sd() -> Iterator[Systemd]:
    files = {**UNIX.files(), **TCP.files(), **MISMATCH.files()}
    with boot_or_skip(units=shipped_template(), files=files) as booted:
        # What an admin does for an address other than the unit's: render the drop-in.
        dropin = booted.run([SUPERVISOR, "render", "socket", TCP.spec_path], check=True).stdout
        booted.write_unit(f"{TCP.socket_unit}.d/override.conf", dropin)
        booted.daemon_reload()
        yield booted


def nginx_include(sd: Systemd, app: App) -> str:
    """`render nginx` for the app, with a unix socket's path as the host reaches it."""
    include = sd.run([SUPERVISOR, "render", "nginx", app.spec_path], check=True).stdout
    if app.socket and app.socket.startswith("/"):
        passed = f"uwsgi_pass unix:{app.socket};"
        assert passed in include, include
        include = include.replace(passed, f"uwsgi_pass unix:/proc/{sd.pid}/root{app.socket};")
    return include


@pytest.mark.nginx
@pytest.mark.parametrize("app", [UNIX, TCP], ids=["unix", "tcp"])
def test_restarts_under_load_fail_no_request_and_keep_the_socket(
    sd: Systemd, app: App, tmp_path: Path
) -> None:
    assert app.socket is not None
    path = app.socket if app.socket.startswith("/") else None
    sd.start(app.unit)
    before = socket_state(sd, app, app.socket, path)
    restarted: list[tuple[float, float]] = []
    with running_nginx(tmp_path / "nginx", nginx_include(sd, app)) as nginx:
        status, body = http_get(nginx.address)
        assert (status, body.split(" pid=")[0]) == (200, "v1"), (status, body, nginx.error_log())
        with Load(nginx.port, threads=THREADS, limit=300) as load:
            served_more(load)
            for _ in range(RESTARTS):
                # systemd counts every start, manual ones too, against the unit's
                # StartLimitBurst=5 per StartLimitIntervalSec=10s (systemd's own
                # default): a sixth restart within 10 s is refused. Keep to the pace
                # an operator or a deploy tool keeps.
                if restarted:
                    time.sleep(max(0.0, restarted[-1][0] + RESTART_PACE - time.monotonic()))
                main = sd.show(app.unit, "MainPID")["MainPID"]
                began = time.monotonic()
                sd.restart(app.unit)  # returns once the new supervisor sent READY=1
                restarted.append((began, time.monotonic()))
                shown = sd.wait_for_state(app.unit, "active")
                assert shown["MainPID"] not in ("0", main), shown
                served_more(load)
        result = load.result
        in_flight = [load.count_between(t0, t1) for t0, t1 in restarted]
        errors = nginx.problems()
    after = socket_state(sd, app, app.socket, path)
    took = [round(t1 - t0, 2) for t0, t1 in restarted]
    print(report(f"{RESTARTS} restarts over {app.socket}", result, before, after))
    print(f"restart took {took} s; requests in flight during each: {in_flight}")
    assert result.failed == 0, (result.errors, errors[-2000:])
    assert after == before, "the socket changed"
    assert len(restarted) == RESTARTS
    assert all(n > 0 for n in in_flight), f"no request met a restart: {in_flight}"
    shown = sd.show(app.unit, "NRestarts", "ActiveState")
    assert shown == {"NRestarts": "0", "ActiveState": "active"}, shown  # no crash among them


def test_unix_socket_admits_nginx_group_only(sd: Systemd) -> None:
    sd.start(UNIX.unit)
    assert UNIX.socket is not None
    stat = sd.run(["stat", "-c", "%U:%G %a", UNIX.socket], check=True).stdout.split()
    assert stat == ["root:www-data", "660"], stat
    connect = f"import socket; socket.socket(socket.AF_UNIX).connect({UNIX.socket!r})"
    python = str(VENV_BIN / "python")

    def connect_as(user: str, group: str) -> subprocess.CompletedProcess[str]:
        ids = ["--reuid", user, "--regid", group, "--clear-groups"]
        return sd.run(["setpriv", *ids, python, "-c", connect])

    www = connect_as("www-data", "www-data")
    assert www.returncode == 0, www.stderr
    nobody = connect_as("nobody", "nogroup")
    assert nobody.returncode != 0 and "PermissionError" in nobody.stderr, nobody.stderr


def test_a_connection_starts_a_stopped_service_and_stopping_the_socket_stops_both(
    sd: Systemd,
) -> None:
    """Socket activation, which the README's stop advice rests on."""
    sd.start(UNIX.unit)
    sd.stop(UNIX.unit)
    assert sd.show(UNIX.unit, "ActiveState")["ActiveState"] == "inactive"
    assert sd.show(UNIX.socket_unit, "ActiveState")["ActiveState"] == "active"
    # One request on the socket: systemd starts the service, which answers it.
    get = [str(VENV_BIN / "python"), "-c", UWSGI_GET, str(UNIX.socket)]
    assert sd.run(get, check=True, timeout=60).stdout.startswith("v1 pid="), "not answered"
    # The answer can come a moment before READY=1 (the supervisor's next stats poll).
    sd.wait_for_state(UNIX.unit, "active")
    # Stopping the socket unit stops the service that requires it.
    sd.stop(UNIX.socket_unit)
    shown = {u: sd.show(u, "ActiveState")["ActiveState"] for u in (UNIX.unit, UNIX.socket_unit)}
    assert set(shown.values()) == {"inactive"}, shown
    sd.start(UNIX.socket_unit)  # as the module found it, for any test after this one


UWSGI_GET = """\
import socket, struct, sys
env = {"REQUEST_METHOD": "GET", "PATH_INFO": "/", "QUERY_STRING": "", "SERVER_NAME": "app",
       "SERVER_PORT": "80", "SERVER_PROTOCOL": "HTTP/1.0", "HTTP_HOST": "app"}
body = b"".join(struct.pack("<H", len(k)) + k.encode() + struct.pack("<H", len(v)) + v.encode()
                for k, v in env.items())
s = socket.socket(socket.AF_UNIX)
s.connect(sys.argv[1])
s.sendall(struct.pack("<BHB", 0, len(body), 0) + body)
print(b"".join(iter(lambda: s.recv(65536), b"")).partition(b"\\r\\n\\r\\n")[2].decode())
"""


# --- a socket unit that does not match the spec ------------------------------------------------


def test_a_socket_unit_listening_elsewhere_warns_and_the_app_still_serves(sd: Systemd) -> None:
    """The mistake a user makes first (a spec without uwsgi.socket) must not take the
    site down, least of all on the restart a package upgrade does: the supervisor
    listens at the spec's own address, and the journal says once what to fix."""
    cp = sd.systemctl("start", MISMATCH.unit)
    assert cp.returncode == 0, cp.stdout + cp.stderr
    needle = "the socket unit passed unix socket /run/uwsgi-supervisor/mismatch.sock"
    journal = sd.wait_for_journal(MISMATCH.unit, needle)
    lines = [line for line in journal.splitlines() if needle in line]
    assert len(lines) == 1, lines
    line = lines[0]
    assert "/run/uwsgi-supervisor/mismatch/app.sock" in line, line  # what the spec says
    assert "set uwsgi.socket: /run/uwsgi-supervisor/mismatch.sock" in line, line  # the fix
    assert f"uwsgi-supervisor render socket {MISMATCH.spec_path}" in line, line
    status = sd.run([SUPERVISOR, "status", "--json", MISMATCH.spec_path], check=True).stdout
    doc = json.loads(status)
    assert doc["supervisor"]["state"] == "running", doc
    (app_socket,) = [s for s in doc["supervisor"]["sockets"] if s["role"] == "app"]
    assert app_socket["address"] == "/run/uwsgi-supervisor/mismatch/app.sock"
    assert app_socket["held_by"] == "supervisor"
    shown = sd.show(MISMATCH.unit, "ActiveState", "NRestarts")
    assert shown == {"ActiveState": "active", "NRestarts": "0"}, (shown, journal)
    print(f"journal: {line}")
    sd.systemctl("stop", MISMATCH.unit, MISMATCH.socket_unit)


# --- a package upgrade -------------------------------------------------------------------------

NEXT_VERSION = f"{__version__}.post1"
TREE = ("pyproject.toml", "README.md", "LICENSE", "supervisor", "units", "etc", "packaging")


@pytest.fixture(scope="module")
def debs(checkout_deb: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """This checkout's .deb, and the same tree with the version bumped to NEXT_VERSION."""
    work = tmp_path_factory.mktemp("upgrade")
    old = checkout_deb
    tree = work / "next"
    tree.mkdir()
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in TREE:
        source = REPO / name
        if source.is_dir():
            shutil.copytree(source, tree / name, ignore=ignore, symlinks=True)
        else:
            shutil.copy2(source, tree / name)
    init = tree / "supervisor" / "__init__.py"
    text = init.read_text()
    assert f'__version__ = "{__version__}"' in text
    init.write_text(text.replace(f'"{__version__}"', f'"{NEXT_VERSION}"'))
    new = build_deb(tree, work / "new")
    return old, new


@pytest.mark.nginx
def test_a_package_upgrade_under_load_fails_no_request_and_keeps_the_socket(
    debs: tuple[Path, Path], tmp_path: Path
) -> None:
    old, new = debs
    app = App("pkgup", f"127.0.0.1:{free_port()}")
    with boot_or_skip(files=app.files()) as sd:
        sd.run(NO_POLICY, check=True)
        sd.run(["dpkg", "-i", str(old)], check=True, timeout=180)
        # This test manager reads units from one directory only: the packaged units go there
        # (the newer package's are the same bytes; checked after the upgrade).
        for name in ("uwsgi-supervisor@.service", "uwsgi-supervisor@.socket"):
            sd.write_unit(name, sd.read_file(f"/lib/systemd/system/{name}"))
        render = [PACKAGED, "render", "socket", app.spec_path]
        sd.write_unit(f"{app.socket_unit}.d/override.conf", sd.run(render, check=True).stdout)
        sd.daemon_reload()
        sd.start(app.unit)
        assert app.socket is not None
        before = socket_state(sd, app, app.socket)
        main = sd.show(app.unit, "MainPID")["MainPID"]
        include = sd.run([PACKAGED, "render", "nginx", app.spec_path], check=True).stdout
        with running_nginx(tmp_path / "nginx", include) as nginx:
            with Load(nginx.port, threads=THREADS, limit=300) as load:
                served_more(load)
                began = time.monotonic()
                upgrade = sd.run(["dpkg", "-i", str(new)], check=True, timeout=240)
                ended = time.monotonic()
                served_more(load)
            result = load.result
            in_flight = load.count_between(began, ended)
            errors = nginx.problems()
        after = socket_state(sd, app, app.socket)
        shown = sd.show(app.unit, "ActiveState", "MainPID", "NRestarts")
        version = sd.run([PACKAGED, "--version"], check=True).stdout.strip()
        installed = sd.run(["dpkg-query", "-W", "-f=${Version}", "uwsgi-supervisor"]).stdout
        for name in ("uwsgi-supervisor@.service", "uwsgi-supervisor@.socket"):
            packaged = sd.read_file(f"/lib/systemd/system/{name}")
            assert packaged == sd.read_file(f"{UNIT_DIR}/{name}"), name
    print(report(f"dpkg -i {old.name} -> {new.name}", result, before, after))
    print(f"dpkg -i took {ended - began:.1f}s, {in_flight} requests in flight during it")
    print(f"MainPID {main} -> {shown['MainPID']}; running {version}")
    assert (installed, version) == (NEXT_VERSION, f"uwsgi-supervisor {NEXT_VERSION}"), upgrade
    assert shown["ActiveState"] == "active" and shown["MainPID"] not in ("0", main), shown
    assert shown["NRestarts"] == "0", shown  # restarted by postinst, not after a crash
    assert result.failed == 0, (result.errors, errors[-2000:])
    assert after == before, "the socket changed"
    assert in_flight > 0, "no request met the upgrade"
