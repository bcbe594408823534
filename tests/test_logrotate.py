"""`logto` rotated for real: the packages' logrotate snippet and a plain `mv`.

Real supervisor, uWSGI and Flask app writing `logto` in a temp dir (as the
spec's unprivileged user when the tests run as root), Debian's real
`logrotate` running the shipped snippet (its path moved to the temp dir),
and for the load test real nginx in front with `wrk`. Every line uWSGI's
request log should hold is counted across the live file and every rotated
one (gzipped ones too): none lost, none twice, and uWSGI never reloaded.
"""

from __future__ import annotations

import gzip
import os
import pwd
import re
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import pytest
from conftest import require
from harness import REPO, Supervised, copy_app
from kit import wrk
from kit.net import free_port, http_get, serves
from kit.procs import children
from kit.wait import wait_until

from supervisor.render import render_nginx
from supervisor.spec.load import load_spec

SNIPPET = REPO / "etc" / "logrotate.d" / "uwsgi-supervisor"
SHIPPED_DIR = "/var/log/uwsgi-supervisor"
LOGROTATE = "/usr/sbin/logrotate"
USER = "nobody"  # the spec's user when the tests run as root
LOAD_SECONDS = 12
ROTATE_AT = (2.0, 5.0, 8.0)  # seconds into the load
HEALTH = "/links"  # the supervisor's health checks: told apart from the load's "/"
# uWSGI's request log (after memory-report's figures): "[pid: 12|app: 0|req: 3/9] ...
# GET / => generated ... (HTTP/1.1 200) ..."
REQUEST = re.compile(
    r"\[pid: (\d+)\|app: \d+\|req: (\d+)/\d+\] .* (\S+) (\S+) => .*\(HTTP/[0-9.]+ (\d+)\)"
)


def require_logrotate() -> None:
    require(
        os.access(LOGROTATE, os.X_OK),
        f"logrotate tier: {LOGROTATE} missing; install Debian's logrotate"
        " (apt-get install logrotate)",
    )


@dataclass
class LoggedApp:
    sup: Supervised
    log: Path  # the spec's logto
    http: Optional[int]  # uWSGI's own HTTP listener (tests without nginx)

    @property
    def dir(self) -> Path:
        return self.log.parent

    def files(self) -> list[Path]:
        """The live log and every rotated one."""
        return sorted(self.dir.glob(self.log.name + "*"))

    def lines(self) -> list[str]:
        out: list[str] = []
        for path in self.files():
            data = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
            out += data.decode("utf-8", "replace").splitlines()
        return out


def service_ids() -> Optional[tuple[int, int]]:
    if os.geteuid() != 0:
        return None
    pw = pwd.getpwnam(USER)
    return pw.pw_uid, pw.pw_gid


@contextmanager
def logged_app(tmp: Path, http: bool = False) -> Iterator[LoggedApp]:
    """The blog app under a supervisor with `logto: TMP/logs/app/uwsgi.log`, a
    directory laid out as the unit's LogsDirectory= makes it (the app user's)."""
    os.chmod(tmp, 0o711)  # the service user and nginx's workers pass through
    app = copy_app("blog", tmp / "app")
    logs = tmp / "logs" / "app"
    logs.mkdir(parents=True)
    os.chmod(logs.parent, 0o755)
    ids = service_ids()
    if ids is not None:
        os.chown(logs, *ids)
    port = free_port() if http else None
    spec = (
        f'app:\n  module: "blog:app"\n  chdir: {app}\n'
        f"uwsgi:\n  processes: 4\n"
        + (f"  http: 127.0.0.1:{port}\n" if port else "")
        + f"runtime_dir: {tmp / 'rt'}\nnginx:\n  group: www-data\n"
        f"logto: {logs / 'uwsgi.log'}\nwatch:\n  enabled: false\nhealth:\n  path: {HEALTH}\n"
        + (f"user: {USER}\n" if ids is not None else "")
    )
    with Supervised(tmp, spec, name="app") as sup:
        sup.start()
        yield LoggedApp(sup, logs / "uwsgi.log", port)


def requests_in(lines: list[str], path: str) -> list[tuple[str, str, str]]:
    """(worker pid, its request number, status) of each logged request for `path`."""
    found = []
    for line in lines:
        m = REQUEST.search(line)
        if m and m.group(4) == path:
            found.append((m.group(1), m.group(2), m.group(5)))
    return found


def open_log_files(pid: int, directory: Path) -> set[str]:
    """The files in `directory` that process `pid` holds open."""
    held = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith(str(directory)):
            held.add(target)
    return held


def run_logrotate(conf: Path, state: Path) -> None:
    done = subprocess.run(
        [LOGROTATE, "-f", "-s", str(state), str(conf)],
        capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    assert done.returncode == 0 and not done.stderr, done


def test_the_snippet_rotates_without_copytruncate_or_postrotate() -> None:
    text = SNIPPET.read_text()
    rules = [line.split("#")[0].strip() for line in text.splitlines()]
    assert "copytruncate" not in rules, "copytruncate loses the lines between copy and truncate"
    assert "delaycompress" in rules  # uWSGI may write the newest rotated file a moment longer
    assert "create" in rules  # bare: the rotated file's owner, the app's user
    assert not [r for r in rules if r.startswith(("postrotate", "prerotate", "su "))]
    assert f"{SHIPPED_DIR}/*/*.log" in text


def test_a_moved_log_is_followed_by_uwsgi(short_tmp: Path) -> None:
    with logged_app(short_tmp, http=True) as a:
        target = f"127.0.0.1:{a.http}"
        master = a.sup.uwsgi_pid()
        workers = set(children(master))
        for n in range(5):
            assert http_get(target, f"/?before={n}")[0] == 200
        moved = a.dir / "moved.log"
        a.log.rename(moved)  # no logrotate: `mv`, and nothing else
        for n in range(5):
            assert http_get(target, f"/?between={n}")[0] == 200
        wait_until(lambda: "reopens it" in a.sup.log(), 10, f"a reopen; log:\n{a.sup.log()}")
        assert http_get(target, "/?after=1")[0] == 200
        wait_until(lambda: "/?after=1" in a.log.read_text(), 5, "the request in the new file")
        old = moved.read_text()
        assert old.count("GET /?before=") == 5 and old.count("GET /?between=") == 5, old
        assert "triggering log-reopen" in old and "GET /?after" not in old
        ids = service_ids()
        if ids is not None:  # made by the supervisor, for the user uWSGI runs as
            assert (a.log.stat().st_uid, a.log.stat().st_gid) == ids
        assert a.sup.uwsgi_pid() == master and set(children(master)) == workers
        assert open_log_files(master, a.dir) == {str(a.log)}
        assert not [pid for pid in workers if open_log_files(pid, a.dir)]
        assert not [pid for pid in workers if open_log_files(pid, a.dir)]


def test_a_rotation_while_the_supervisor_was_down_is_caught_up(short_tmp: Path) -> None:
    with logged_app(short_tmp, http=True) as a:
        target = f"127.0.0.1:{a.http}"
        master = a.sup.uwsgi_pid()
        assert a.sup.proc is not None
        a.sup.proc.kill()  # SIGKILL: uWSGI serves on, unsupervised
        a.sup.proc.wait()
        a.log.rename(a.dir / "uwsgi.log.1")  # logrotate runs meanwhile
        a.log.touch(mode=0o600)
        ids = service_ids()
        if ids is not None:
            os.chown(a.log, *ids)  # its `create`: the rotated file's owner
        assert http_get(target, "/?down=1")[0] == 200
        with Supervised(short_tmp, a.sup.spec.read_text(), name="app") as again:
            seen = len(again.log()) if again.logfile.exists() else 0
            again.start()
            assert f"adopted uWSGI pid {master}" in again.log()[seen:]
            wait_until(lambda: "reopens it" in again.log()[seen:], 10, "a reopen after adoption")
            assert http_get(target, "/?up=1")[0] == 200
            wait_until(lambda: "/?up=1" in a.log.read_text(), 5, "the request in the new file")
            assert "GET /?down=1" in (a.dir / "uwsgi.log.1").read_text()
            assert again.uwsgi_pid() == master
            assert open_log_files(master, a.dir) == {str(a.log)}


def test_a_rotation_during_a_swaps_bake_reopens_both_masters(short_tmp: Path) -> None:
    with logged_app(short_tmp, http=True) as a:
        old = a.sup.uwsgi_pid()
        a.sup.signal(signal.SIGUSR1)  # a reload: swap, then the old master paused (bake)
        wait_until(lambda: f"pid {old} paused" in a.sup.log(), 30, f"a bake; {a.sup.log()}")
        new = a.sup.uwsgi_pid()
        a.log.rename(a.dir / "uwsgi.log.1")
        a.log.touch(mode=0o600)
        ids = service_ids()
        if ids is not None:
            os.chown(a.log, *ids)
        wait_until(lambda: a.sup.log().count("reopens it") == 2, 5, "both masters reopening")
        for master in (new, old):
            assert f"uWSGI pid {master} reopens it" in a.sup.log()
            assert open_log_files(master, a.dir) == {str(a.log)}, master
        assert http_get(f"127.0.0.1:{a.http}", "/?baked=1")[0] == 200
        wait_until(lambda: "/?baked=1" in a.log.read_text(), 5, "the request in the new file")


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root: uWSGI runs as another user")
def test_a_new_log_the_user_cannot_write_is_refused_without_a_reload(short_tmp: Path) -> None:
    with logged_app(short_tmp, http=True) as a:
        target = f"127.0.0.1:{a.http}"
        master = a.sup.uwsgi_pid()
        workers = set(children(master))
        a.log.rename(a.dir / "uwsgi.log.1")
        a.log.touch(mode=0o600)  # root's: what `create 0600 root root` would make
        wait_until(lambda: "is not told to reopen" in a.sup.log(), 10, "the refusal")
        for n in range(5):
            assert http_get(target, f"/?meanwhile={n}")[0] == 200
        time.sleep(1.0)  # several rounds of the loop: reported once, never sent
        log = a.sup.log()
        assert log.count("is not told to reopen") == 1, log
        assert f"user {USER} cannot write {a.log}" in log and "reopens it" not in log, log
        rotated = (a.dir / "uwsgi.log.1").read_text()
        assert rotated.count("GET /?meanwhile=") == 5, "uWSGI writes on into the rotated file"
        assert a.log.read_text() == ""
        os.chown(a.log, *service_ids() or (0, 0))  # the operator's fix
        wait_until(lambda: "reopens it" in a.sup.log(), 10, "a reopen once it is writable")
        assert http_get(target, "/?fixed=1")[0] == 200
        wait_until(lambda: "/?fixed=1" in a.log.read_text(), 5, "the request in the new file")
        assert a.sup.uwsgi_pid() == master and set(children(master)) == workers
        assert not [line for line in a.lines() if "reload" in line.lower()]


@pytest.mark.nginx
@pytest.mark.slow
def test_rotations_under_load_lose_no_line(short_tmp: Path) -> None:
    from kit.nginx import running_nginx

    require_logrotate()
    with logged_app(short_tmp) as a:
        conf = short_tmp / "logrotate.conf"
        conf.write_text(SNIPPET.read_text().replace(SHIPPED_DIR, str(short_tmp / "logs")))
        state = short_tmp / "logrotate.state"
        include = render_nginx(load_spec(a.sup.spec))
        with running_nginx(short_tmp / "nginx", include, user="www-data www-data") as ngx:
            assert serves(ngx.port, "v1"), ngx.error_log()
            master = a.sup.uwsgi_pid()
            workers = set(children(master))
            access = short_tmp / "nginx" / "access.log"
            started = time.monotonic()
            load = wrk.start(ngx.port, LOAD_SECONDS, threads=2, connections=16)
            try:
                for at in ROTATE_AT:
                    time.sleep(max(0.0, started + at - time.monotonic()))
                    run_logrotate(conf, state)
            finally:
                result = wrk.finish(load, LOAD_SECONDS + 60)
            # Every request for / that nginx passed on (the load's, and the check
            # by `serves` above), in its access log: as many lines must be in uWSGI's.
            # Both logs may still be catching up once wrk is gone (nginx writes the 499
            # of a request whose client left when uWSGI's answer arrives): compare once
            # they agree, or after 10 s with what they say then.
            deadline = time.monotonic() + 10
            while True:
                text = access.read_text().splitlines()
                answered = [line for line in text if '"GET / HTTP/' in line]
                lines = requests_in(a.lines(), "/")
                if len(lines) == len(answered) or time.monotonic() > deadline:
                    break
                time.sleep(0.2)
            statuses = Counter(line.split('" ')[1].split()[0] for line in answered)
            print(
                f"wrk: {result['requests']} requests, {result['failed']} failed; nginx answered"
                f" {len(answered)} {dict(statuses)}; uWSGI logged {len(lines)} across"
                f" {[p.name for p in a.files()]}"
            )
            # 499: nginx's word for a request whose client left (wrk closes its
            # connections when its time is up); uWSGI answered and logged it.
            assert result["failed"] == 0 and set(statuses) <= {"200", "499"}, (result, statuses)
            assert len(lines) == len(answered), "a request line lost (or one too many)"
            twice = [k for k, n in Counter((pid, req) for pid, req, _ in lines).items() if n > 1]
            assert not twice, f"logged twice: {twice[:5]}"
            assert {status for _, _, status in lines} == {"200"}
            # Each rotation kept its lines: every rotated file holds some of the load's.
            rotated = [p for p in a.files() if p != a.log]
            assert len(rotated) == len(ROTATE_AT), rotated
            assert all(requests_in(read(p), "/") for p in rotated), "a rotated file got nothing"
            assert a.sup.log().count("reopens it") == len(ROTATE_AT), a.sup.log()
            assert sum("triggering log-reopen" in line for line in a.lines()) == len(ROTATE_AT)
            # Not reloaded: the same master and workers; rotated files all closed.
            assert a.sup.uwsgi_pid() == master and set(children(master)) == workers
            assert not [line for line in a.lines() if "reload" in line.lower()]
            # The master, which writes every line, holds the live file only; the
            # workers (which write through it) hold none, not even the one live at
            # their fork: no rotated file is kept open, nor its disk space.
            assert open_log_files(master, a.dir) == {str(a.log)}
            assert [open_log_files(pid, a.dir) for pid in workers] == [set()] * len(workers)
            assert serves(ngx.port, "v1")
            assert requests_in(read(a.log), "/")[-1:], "the live file gets the new lines"


def read(path: Path) -> list[str]:
    data = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    return data.decode("utf-8", "replace").splitlines()

