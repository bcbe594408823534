"""The classic hand setup, imported, serves the same app through real nginx.

classic-setup.md's uwsgi.ini (socket = :7777, master, processes, module,
master-fifo, logto, stats) beside a real Flask app, and each of its two
nginx shapes (the app at / and at /bbb, through `location @bbb`): `import`
writes a spec that `check` accepts, the real supervisor runs it, nginx gets
the include `render nginx` prints, and the app answers at its mount with
SCRIPT_NAME set, as test_nginx.py expects of any spec.
"""

from __future__ import annotations

import http.client
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from harness import Supervised, copy_app
from kit.nginx import running_nginx
from test_nginx import page_field

pytestmark = [pytest.mark.nginx, pytest.mark.slow]

AS_ROOT = os.geteuid() == 0
WORKER_USER = "www-data"

# classic-setup.md's uwsgi.ini, its runtime files in a www directory of ours.
CLASSIC_INI = """\
[uwsgi]
socket = :7777
master = true
processes = 2
module = linkapp:app
master-fifo = {www}/uwsgi.fifo
logto = {www}/uwsgi.log
stats = {www}/stats.socket
"""
# Its two nginx shapes, verbatim, in a server block of an nginx.conf.
SHAPES = {
    "/": """\
    location / {
		uwsgi_pass 127.0.0.1:7777;
		include uwsgi_params;
	}
""",
    "/bbb": """\
    location = /bbb {
        return 301 $scheme://$host$uri/$is_args$args;
    }
    location /bbb/ {
        try_files $uri @bbb;
    }
    location @bbb {
		uwsgi_pass 127.0.0.1:7777;
		include uwsgi_params;
    }
""",
}


@pytest.fixture
def site_tmp() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="usup-imps-", dir="/tmp"))  # short: socket paths
    os.chmod(path, 0o711)  # nginx's workers traverse it to the socket
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def get(port: int, path: str) -> tuple[int, http.client.HTTPMessage, str]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        return resp.status, resp.headers, resp.read().decode()
    finally:
        conn.close()


@pytest.mark.parametrize("mount", list(SHAPES), ids=["root", "bbb"])
def test_the_classic_setup_imports_and_serves_the_same_app(mount: str, site_tmp: Path) -> None:
    app = copy_app("linkapp", site_tmp / "app")
    www = site_tmp / "www"  # "one has to make sure it exists"
    www.mkdir()
    (app / "uwsgi.ini").write_text(CLASSIC_INI.format(www=www))
    user = "user www-data;\n" if AS_ROOT else ""
    nginx_conf = f"{user}http {{\n  server {{\n    listen 80;\n{SHAPES[mount]}  }}\n}}\n"
    (site_tmp / "nginx.conf").write_text(nginx_conf)
    sock = site_tmp / "app.sock"

    done = subprocess.run(
        [sys.executable, "-m", "supervisor", "import", "app/uwsgi.ini", "--nginx", "nginx.conf",
         "--socket", str(sock), "-o", "linkapp.yaml"],
        cwd=site_tmp, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "socket = :7777: NOT carried over" not in done.stderr  # --socket chose
    spec_text = (site_tmp / "linkapp.yaml").read_text()
    assert "NOT CARRIED OVER: not an address" not in spec_text
    assert "from app/uwsgi.ini line 2: socket = :7777" in spec_text
    spec = yaml.safe_load(spec_text)
    assert spec["app"] == {"module": "linkapp:app", "chdir": str(app)}
    assert spec["uwsgi"] == {"socket": str(sock), "processes": 2, "mount": mount}
    assert spec["logto"] == str(www / "uwsgi.log")
    if not AS_ROOT:  # only root can give the socket to nginx's group
        spec_text = spec_text.replace("nginx:\n", "").replace(f"  group: {WORKER_USER}\n", "")

    check = subprocess.run(
        [sys.executable, "-m", "supervisor", "check", str(site_tmp / "linkapp.yaml")],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert check.returncode == 0, check.stderr

    runtime_dir = site_tmp / "rt"
    extra = f"runtime_dir: {runtime_dir}\nwatch:\n  enabled: false\n"
    with Supervised(site_tmp, spec_text + extra, name="linkapp") as sup:
        sup.start()
        render = sup.cli("render", "nginx", str(sup.spec))
        assert render.returncode == 0, render.stderr
        user_arg = WORKER_USER if AS_ROOT else None
        with running_nginx(site_tmp / "nginx", render.stdout, user=user_arg) as nginx:
            base = mount.rstrip("/")
            status, headers, html = get(nginx.port, f"{base}/?q=1")
            assert status == 200, f"{html}\n{nginx.error_log()[-2000:]}\n{sup.log()[-2000:]}"
            assert headers.get("X-Served-By") == "linkapp"
            assert page_field(html, "script-name") == base
            assert page_field(html, "page") == f"{base}/page/2"
            if mount != "/":
                status, headers, _ = get(nginx.port, "/bbb?q=1")
                assert (status, headers.get("Location")) == (301, "/bbb/?q=1")
        # The supervisor owns the master FIFO and stats socket now, not www/.
        assert not (www / "uwsgi.fifo").exists() and not (www / "stats.socket").exists()
        assert (runtime_dir / "master.fifo").exists()
        assert (www / "uwsgi.log").stat().st_size > 0  # logto carried over
