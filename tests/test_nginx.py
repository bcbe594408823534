"""A real Flask app behind real nginx, run by the real supervisor, at / and /bbb.

nginx gets the include `uwsgi-supervisor render nginx` prints for the very
spec the supervisor runs. Run as root, nginx's workers are www-data, as on
Debian, and reach the app's socket only through nginx.group.
"""

from __future__ import annotations

import contextlib
import grp
import http.client
import os
import pwd
import re
import shutil
import socket
import stat
import struct
import tempfile
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import require_nginx
from harness import Supervised, copy_app
from kit.nginx import Nginx, running_nginx
from kit.wait import wait_until

from supervisor.spec.model import RuntimePaths
from supervisor.uwsgi import procs

pytestmark = [pytest.mark.nginx, pytest.mark.slow]

AS_ROOT = os.geteuid() == 0
# The worker user nginx's Debian package runs; tests use it when they can.
WORKER_USER = "www-data"
# For tests about a sub-path only: reuses the module's /bbb site.
BBB_ONLY = pytest.mark.parametrize("site", [pytest.param("/bbb", id="bbb")], indirect=True)


@dataclass
class Reply:
    status: int
    headers: http.client.HTTPMessage
    body: bytes

    @property
    def text(self) -> str:
        return self.body.decode()


@dataclass
class Site:
    nginx: Nginx
    mount: str  # "/" or "/bbb"
    app_dir: Path

    def url(self, path: str) -> str:
        """`path` under the app's mount ("/" -> "/bbb/")."""
        return self.mount.rstrip("/") + path

    def get(self, path: str) -> Reply:
        """One GET through nginx, redirects not followed."""
        conn = http.client.HTTPConnection("127.0.0.1", self.nginx.port, timeout=10)
        try:
            conn.request("GET", path)
            resp = conn.getresponse()
            return Reply(resp.status, resp.headers, resp.read())
        finally:
            conn.close()


def spec_text(app: Path, runtime_dir: Path, mount: str) -> str:
    static = mount.rstrip("/") + "/static"
    group = f"  group: {WORKER_USER}\n" if AS_ROOT else ""
    return (
        "name: linkapp\n"
        f"app:\n  module: linkapp:app\n  chdir: {app}\n"
        f"uwsgi:\n  processes: 1\n  mount: {mount}\n"
        f"runtime_dir: {runtime_dir}\n"
        "watch:\n  enabled: false\n"
        f"nginx:\n{group}  static:\n    {static}: {app / 'static'}\n"
    )


def uwsgi_get(sock: Path, path: str) -> bytes:
    """One GET straight to the app's uwsgi socket: the raw HTTP response."""
    params = {
        "REQUEST_METHOD": "GET",
        "REQUEST_URI": path,
        "PATH_INFO": path,
        "QUERY_STRING": "",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "SERVER_NAME": "localhost",
        "SERVER_PORT": "80",
        "HTTP_HOST": "localhost",
    }
    body = b"".join(
        struct.pack("<H", len(k)) + k.encode() + struct.pack("<H", len(v)) + v.encode()
        for k, v in params.items()
    )
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(5)
        s.connect(str(sock))
        s.sendall(struct.pack("<BHB", 0, len(body), 0) + body)
        chunks = []
        while chunk := s.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def answers(sock: Path, path: str) -> bool:
    try:
        return uwsgi_get(sock, path).startswith(b"HTTP/1.1 200")
    except OSError:
        return False


@pytest.fixture(scope="module", params=["/", "/bbb"], ids=["root", "bbb"])
def site(request: pytest.FixtureRequest) -> Iterator[Site]:
    require_nginx()
    mount: str = request.param
    tmp = Path(tempfile.mkdtemp(prefix="usup-ngx-", dir="/tmp"))  # short: socket paths
    try:
        os.chmod(tmp, 0o711)  # nginx's workers traverse it to the socket and files
        app = copy_app("linkapp", tmp / "app")
        runtime_dir = tmp / "rt"
        with Supervised(tmp, spec_text(app, runtime_dir, mount), name="linkapp") as sup:
            sup.start()
            sock = RuntimePaths(runtime_dir).app_socket
            try:
                wait_until(lambda: answers(sock, mount.rstrip("/") + "/"), 30, f"the app on {sock}")
            except AssertionError as exc:
                raise AssertionError(f"{exc}; supervisor log:\n{sup.log()[-3000:]}") from None
            render = sup.cli("render", "nginx", str(sup.spec))
            assert render.returncode == 0, render.stderr
            user = WORKER_USER if AS_ROOT else None
            with running_nginx(tmp / "nginx", render.stdout, user=user) as nginx:
                yield Site(nginx=nginx, mount=mount, app_dir=app)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def page_field(html: str, element_id: str) -> str:
    match = re.search(rf'id="{element_id}"(?: href="([^"]*)">|>([^<]*)<)', html)
    assert match, f"no #{element_id} in {html!r}"
    return match.group(1) if match.group(1) is not None else match.group(2)


def test_app_sees_its_mount_as_script_name(site: Site) -> None:
    resp = site.get(site.url("/?q=1"))
    html = resp.text
    assert resp.status == 200, f"{html}\n{site.nginx.error_log()[-2000:]}"
    assert resp.headers.get("X-Served-By") == "linkapp"
    assert page_field(html, "script-name") == site.mount.rstrip("/")
    assert page_field(html, "path-info") == "/"
    assert page_field(html, "query") == "q=1"


def test_url_for_links_carry_the_mount_and_work(site: Site) -> None:
    html = site.get(site.url("/")).text
    link = page_field(html, "page")
    assert link == site.url("/page/2")
    resp = site.get(link)
    assert (resp.status, resp.body) == (200, b"page 2\n")


def test_static_file_comes_from_nginx_not_the_app(site: Site) -> None:
    html = site.get(site.url("/")).text
    link = page_field(html, "static")
    assert link == site.url("/static/hello.txt")
    resp = site.get(link)
    assert resp.status == 200
    assert resp.body == (site.app_dir / "static/hello.txt").read_bytes()
    assert resp.headers.get("X-Served-By") is None  # every app response has it


def test_static_alias_does_not_escape_its_directory(site: Site) -> None:
    # With `location /static { alias DIR; }` this would serve DIR/../linkapp.py.
    resp = site.get(site.url("/static../linkapp.py"))
    assert b"url_for" not in resp.body
    assert resp.headers.get("X-Served-By") == "linkapp"  # fell through to the app


@BBB_ONLY
def test_bare_mount_redirects_keeping_port_and_query(site: Site) -> None:
    resp = site.get("/bbb?q=1")
    assert resp.status == 301
    assert resp.headers.get("Location") == "/bbb/?q=1"
    # A client resolves it against the URL it asked for: same host and port.
    with urllib.request.urlopen(f"{site.nginx.base_url}/bbb?q=1", timeout=10) as followed:
        assert followed.geturl() == f"{site.nginx.base_url}/bbb/?q=1"
        html = followed.read().decode()
    assert page_field(html, "script-name") == "/bbb"
    assert page_field(html, "query") == "q=1"


@BBB_ONLY
def test_outside_the_mount_is_not_the_app(site: Site) -> None:
    resp = site.get("/bbbx/")
    assert resp.status == 404
    assert resp.headers.get("X-Served-By") is None


def worker_users(master: int) -> set[str]:
    """Users of the processes whose parent is `master`."""
    users = set()
    for entry in os.scandir("/proc"):
        if entry.name.isdigit() and procs.parent_pid(int(entry.name)) == master:
            with contextlib.suppress(OSError):
                users.add(pwd.getpwuid(os.stat(entry.path).st_uid).pw_name)
    return users


@pytest.mark.skipif(not AS_ROOT, reason="nginx runs its workers as the tests' own user")
def test_workers_reach_the_socket_through_its_group_only(site: Site) -> None:
    sock = RuntimePaths(site.app_dir.parent / "rt").app_socket
    st = sock.stat()
    assert stat.S_IMODE(st.st_mode) == 0o660
    assert st.st_gid == grp.getgrnam(WORKER_USER).gr_gid
    assert worker_users(site.nginx.pid) == {WORKER_USER}
