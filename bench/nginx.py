"""Debian's nginx in front of each contender: a throwaway prefix, 127.0.0.1 only."""

from __future__ import annotations

import contextlib
import grp
import os
import pwd
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from bench.common import free_port

NGINX = "/usr/sbin/nginx"
DEBIAN_CONF = Path("/etc/nginx")

CONF = """\
{user}daemon off;
master_process on;
worker_processes 1;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    keepalive_requests 1000000;
    client_body_temp_path {tmp}/temp/client_body;
    proxy_temp_path {tmp}/temp/proxy;
    fastcgi_temp_path {tmp}/temp/fastcgi;
    uwsgi_temp_path {tmp}/temp/uwsgi;
    scgi_temp_path {tmp}/temp/scgi;
    include mime.types;
    default_type application/octet-stream;
    server {{
        listen 127.0.0.1:{port};
        server_name localhost;
        include {tmp}/app.conf;
    }}
}}
"""


def plain_include(socket_path: Path) -> str:
    """What a user of plain uWSGI writes: the same locations the supervisor renders."""
    return (
        "location / {\n    include uwsgi_params;\n"
        f"    uwsgi_pass unix:{socket_path};\n    uwsgi_next_upstream error;\n}}\n"
    )


@dataclass
class Nginx:
    port: int
    pid: int


def _user() -> str:
    if os.geteuid() != 0:
        return ""
    me = pwd.getpwuid(os.geteuid()).pw_name
    return f"user {me} {grp.getgrgid(os.getegid()).gr_name};\n"


def _listening(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


@contextlib.contextmanager
def running_nginx(tmp: Path, include: str) -> Iterator[Nginx]:
    """Serve `include` in a server block on a free loopback port; stop nginx by PID after."""
    (tmp / "temp").mkdir(parents=True, exist_ok=True)
    for name in ("uwsgi_params", "mime.types"):
        shutil.copyfile(DEBIAN_CONF / name, tmp / name)
    (tmp / "app.conf").write_text(include)
    port = free_port()
    (tmp / "nginx.conf").write_text(CONF.format(user=_user(), tmp=tmp, port=port))
    argv = [NGINX, "-p", f"{tmp}/", "-c", str(tmp / "nginx.conf"), "-e", str(tmp / "error.log")]
    with open(tmp / "nginx.out", "ab") as out:
        proc = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=out, stderr=out, start_new_session=True
        )
    try:
        deadline = time.monotonic() + 10
        while not _listening(port):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"nginx did not start: {(tmp / 'error.log').read_text()}")
            time.sleep(0.02)
        yield Nginx(port=port, pid=proc.pid)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGQUIT)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)  # our own group: master and workers
                proc.wait()
