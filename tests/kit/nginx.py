"""Debian's real nginx in a throwaway prefix, listening on 127.0.0.1 only.

`write_conf` wraps an include (what `uwsgi-supervisor render nginx` prints)
in a `server {}` block; `nginx_check` runs `nginx -t` on it; `running_nginx`
serves it on a free loopback port and stops the master it started, by PID.
Tests leave the logs on; benchmarks pass `quiet=True`, as logging costs under wrk.
"""

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
from typing import Optional

from .net import LOOPBACK, free_port

NGINX = Path("/usr/sbin/nginx")
# Files the include and the config refer to, as Debian ships them.
DEBIAN_CONF = Path("/etc/nginx")
START_TIMEOUT = 10.0
STOP_TIMEOUT = 10.0
PORT_TRIES = 5

# worker_connections counts upstream connections too: wrk's 32 need 64.
CONF_TEMPLATE = """\
{user}daemon off;
master_process on;
worker_processes 1;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log {error_level};

events {{
    worker_connections 1024;
}}

http {{
    access_log {access_log};
    keepalive_requests 1000000;
    client_body_temp_path {tmp}/temp/client_body;
    proxy_temp_path {tmp}/temp/proxy;
    fastcgi_temp_path {tmp}/temp/fastcgi;
    uwsgi_temp_path {tmp}/temp/uwsgi;
    scgi_temp_path {tmp}/temp/scgi;
    include mime.types;
    default_type application/octet-stream;

    server {{
        listen {host}:{port};
        server_name localhost;
        include {tmp}/app.conf;
    }}
}}
"""


class NginxMissing(RuntimeError):
    """nginx's binary or Debian's files it includes are not installed."""


def missing() -> Optional[str]:
    """Why nginx cannot run here (what to install), or None when it can."""
    if os.access(NGINX, os.X_OK) and (DEBIAN_CONF / "uwsgi_params").is_file():
        return None
    return (
        f"nginx tier: {NGINX} or {DEBIAN_CONF}/uwsgi_params missing; "
        "install Debian's nginx-light (apt-get install nginx-light)"
    )


def _require() -> None:
    reason = missing()
    if reason is not None:
        raise NginxMissing(reason)


def _user_directive(user: Optional[str]) -> str:
    # Only a root master switches its workers to another user (as root with no
    # `user`, they would run as nobody); otherwise they run as the caller.
    if os.geteuid() != 0:
        return ""
    if user is None:
        user = f"{pwd.getpwuid(os.geteuid()).pw_name} {grp.getgrgid(os.getegid()).gr_name}"
    return f"user {user};\n"


def write_conf(
    tmp: Path, include: str, port: int = 0, user: Optional[str] = None, quiet: bool = False
) -> Path:
    """Write tmp/nginx.conf wrapping `include` in a server block; return its path.

    Workers run as `user` when nginx runs as root (as Debian's run as
    www-data), else as the caller. Relative includes (`uwsgi_params`,
    `mime.types`) resolve next to nginx.conf, as they do in /etc/nginx, so
    Debian's files are copied there. `quiet`: no access log, warnings only.
    """
    tmp.mkdir(parents=True, exist_ok=True)
    (tmp / "temp").mkdir(exist_ok=True)
    for name in ("uwsgi_params", "mime.types"):
        shutil.copyfile(DEBIAN_CONF / name, tmp / name)
    (tmp / "app.conf").write_text(include)
    conf = tmp / "nginx.conf"
    conf.write_text(
        CONF_TEMPLATE.format(
            user=_user_directive(user),
            tmp=tmp,
            host=LOOPBACK,
            port=port or 8080,
            error_level="warn" if quiet else "info",
            access_log="off" if quiet else f"{tmp}/access.log",
        )
    )
    return conf


def _argv(tmp: Path, *extra: str) -> list[str]:
    conf, log = tmp / "nginx.conf", tmp / "error.log"
    return [str(NGINX), "-p", f"{tmp}/", "-c", str(conf), "-e", str(log), *extra]


def nginx_check(tmp: Path, include: str) -> subprocess.CompletedProcess[str]:
    """`nginx -t` on a config that includes `include`; the result, not raised."""
    _require()
    write_conf(tmp, include)
    return subprocess.run(_argv(tmp, "-t"), capture_output=True, text=True, timeout=30, check=False)


@dataclass
class Nginx:
    tmp: Path
    port: int
    pid: int  # the master's; it leads a session of its own, workers included

    @property
    def address(self) -> str:
        """host:port, as `http_get` takes it."""
        return f"{LOOPBACK}:{self.port}"

    @property
    def base_url(self) -> str:
        return f"http://{self.address}"

    def error_log(self) -> str:
        try:
            return (self.tmp / "error.log").read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def problems(self) -> str:
        """The error log's lines of level warn and above: under load, the info
        lines (clients closing keepalive connections) bury them."""
        levels = ("[warn]", "[error]", "[crit]", "[alert]", "[emerg]")
        return "\n".join(
            line for line in self.error_log().splitlines() if any(lv in line for lv in levels)
        )


def _listening(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(0.5)
        return s.connect_ex((LOOPBACK, port)) == 0


def _start(tmp: Path, port: int) -> Optional[subprocess.Popen[bytes]]:
    """Start nginx on `port`; None if the port was taken meanwhile."""
    with open(tmp / "nginx.out", "ab") as out:
        proc = subprocess.Popen(
            _argv(tmp),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=out,
            start_new_session=True,  # its workers share a group we can reap
        )
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            log = (tmp / "error.log").read_text(errors="replace")
            if "Address already in use" in log:
                return None
            raise RuntimeError(f"nginx exited {proc.returncode}:\n{log}")
        if _listening(port):
            return proc
        time.sleep(0.02)
    _stop(proc)
    raise RuntimeError(f"nginx not listening on {port} after {START_TIMEOUT}s")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """Stop our nginx master: graceful QUIT, then TERM, then KILL its group."""
    for sig in (signal.SIGQUIT, signal.SIGTERM):
        if proc.poll() is not None:
            return  # a master that exited by itself has stopped its workers
        proc.send_signal(sig)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(STOP_TIMEOUT)
            return
    # Not reaped yet, so the group is still ours; it holds the workers too.
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


@contextlib.contextmanager
def running_nginx(
    tmp: Path, include: str, user: Optional[str] = None, quiet: bool = False
) -> Iterator[Nginx]:
    """Serve `include` inside a server block on 127.0.0.1; stop nginx after.

    Raises NginxMissing without nginx, RuntimeError if it does not start.
    """
    _require()
    for _ in range(PORT_TRIES):
        port = free_port()
        write_conf(tmp, include, port, user, quiet)
        proc = _start(tmp, port)
        if proc is not None:
            break
    else:
        raise RuntimeError(f"no free port for nginx after {PORT_TRIES} tries")
    try:
        yield Nginx(tmp=tmp, port=port, pid=proc.pid)
    finally:
        _stop(proc)
