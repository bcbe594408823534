"""The fault suite: each fault of a bad day, injected under load through nginx.

Real supervisor, real uWSGI, real nginx (its workers run as www-data and
reach the app socket through nginx.group, as on a Debian host), `wrk -t2
-c32` running throughout. For each fault the suite records the requests
wrk sent, the ones that failed (socket errors and non-2xx answers) and the
time from the fault to recovery (the site serves what it should and the
supervisor says so), asserts the bound a user would hold us to, and writes
the table to bench/out/faults.md (docs/faults.md keeps a reviewed copy).

Run it alone with `pytest -m faults`; CI runs it once, with everything else.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pytest
from conftest import require
from harness import SUPERVISOR, Supervised, copy_app
from kit import wrk
from kit.app import set_version
from kit.net import serves
from kit.procs import alive
from kit.wait import wait_until

from supervisor.render import render_nginx
from supervisor.spec.load import load_spec

pytestmark = [pytest.mark.nginx, pytest.mark.faults, pytest.mark.slow]

PROCESSES = 4
LOAD_SECONDS = 11  # per fault: 2 s of load before it, the rest to recover in
AFTER_RECOVERY = 2.0  # seconds of load kept once recovered, then wrk stops
TABLE = Path(__file__).resolve().parent.parent / "bench" / "out" / "faults.md"
BROKEN = "def broken(:\n"  # SyntaxError at import


@dataclass
class Row:
    fault: str
    item: str  # the item of the issue that found it
    requests: int
    failed: int
    recovery: float  # seconds from the fault to recovery
    bound: str  # what the test asserts


ROWS: list[Row] = []


@pytest.fixture(scope="module", autouse=True)
def table() -> Iterator[None]:
    yield
    if not ROWS:
        return
    TABLE.parent.mkdir(parents=True, exist_ok=True)
    lines = [
        "| fault | issue 10 item | requests | failed | recovery | bound |",
        "|---|---|---:|---:|---:|---|",
    ]
    for r in ROWS:
        lines.append(
            f"| {r.fault} | {r.item} | {r.requests:,} | {r.failed:,} | {r.recovery:.1f} s"
            f" | {r.bound} |"
        )
    TABLE.write_text("\n".join(lines) + "\n")


@dataclass
class Site:
    sup: Supervised
    app: Path  # the app's directory
    port: int  # nginx's

    @property
    def code(self) -> Path:
        return self.app / "blog.py"


def _spec(tmp: Path, app: Path, extra: str) -> str:
    return (
        f'app:\n  module: "blog:app"\n  chdir: {app}\n'
        f"uwsgi:\n  processes: {PROCESSES}\n"
        f"runtime_dir: {tmp / 'rt'}\nnginx:\n  group: www-data\n{extra}"
    )


@contextmanager
def site(tmp: Path, extra: str = "watch:\n  debounce: 0.3s\n") -> Iterator[Site]:
    from kit.nginx import running_nginx

    os.chmod(tmp, 0o711)  # nginx's workers (www-data) pass through to the socket
    app = copy_app("blog", tmp / "app")
    with Supervised(tmp, _spec(tmp, app, extra), name="app") as sup:
        sup.start()
        include = render_nginx(load_spec(sup.spec))
        with running_nginx(tmp / "nginx", include, user="www-data www-data", quiet=True) as ngx:
            assert serves(ngx.port, "v1"), (tmp / "nginx" / "error.log").read_text()
            yield Site(sup, app, ngx.port)


def under_load(
    s: Site,
    fault: str,
    item: str,
    bound: str,
    inject: Callable[[], Callable[[], object]],
) -> Row:
    """Run wrk; after 2 s inject the fault; wait for its recovery predicate, then
    keep the load on for AFTER_RECOVERY seconds (what recovered must go on serving)."""
    load = wrk.start(s.port, LOAD_SECONDS + int(AFTER_RECOVERY), threads=2, connections=32)
    try:
        time.sleep(2.0)
        start = time.monotonic()
        recovered = inject()
        wait_until(
            recovered,
            LOAD_SECONDS,
            f"recovery from {fault}; state {s.sup.state()}; log:\n{s.sup.log()[-3000:]}",
        )
        took = time.monotonic() - start
        time.sleep(AFTER_RECOVERY)
    finally:
        result = wrk.stop(load, LOAD_SECONDS + 60)
    row = Row(fault, item, result["requests"], result["failed"], took, bound)
    ROWS.append(row)
    return row


def _state(s: Site, key: str) -> object:
    return s.sup.state().get(key)


def test_deploy_that_deletes_and_recreates_the_app(short_tmp: Path) -> None:
    with site(short_tmp) as s:

        def inject() -> Callable[[], object]:
            shutil.rmtree(s.app)  # rm -rf app && git clone ...
            time.sleep(1.0)
            fresh = copy_app("blog", short_tmp / "clone")
            set_version(fresh / "blog.py", "v2")
            fresh.rename(s.app)
            return lambda: serves(s.port, "v2")

        row = under_load(s, "app dir deleted, then recreated", "1", "0 failed", inject)
        assert row.failed == 0, row


def test_broken_push_landing_during_the_check_of_a_good_one(short_tmp: Path) -> None:
    # The import check gates graceful (and chain) reloads; swap checks a new master.
    with site(short_tmp, "watch:\n  debounce: 0.3s\n  reload: graceful\n") as s:

        def inject() -> Callable[[], object]:
            good = s.code.read_text().replace('VERSION = "v1"', 'VERSION = "v2"')
            s.code.write_text("import time\ntime.sleep(3)\n" + good)
            time.sleep(1.5)  # the import check of v2 runs ...
            s.code.write_text(BROKEN)  # ... when the broken push lands
            return lambda: "SyntaxError" in str(_state(s, "reload_refused"))

        row = under_load(s, "broken push during a check", "2", "0 failed", inject)
        assert row.failed == 0, row
        assert serves(s.port, "v1") and _state(s, "crashes") == 0


def test_reload_command_onto_code_that_does_not_import(short_tmp: Path) -> None:
    with site(short_tmp, "watch:\n  enabled: false\n") as s:
        verdicts: list[subprocess.CompletedProcess[str]] = []

        def inject() -> Callable[[], object]:
            s.code.write_text(BROKEN)
            verdicts.append(s.sup.cli("reload", str(s.sup.spec)))
            return lambda: serves(s.port, "v1")

        row = under_load(s, "`reload` onto non-importing code", "3", "0 failed", inject)
        assert row.failed == 0, row
        assert verdicts[0].returncode == 1 and "SyntaxError" in verdicts[0].stderr


def test_sighup_with_a_hostile_spec(short_tmp: Path) -> None:
    with site(short_tmp) as s:
        master = s.sup.uwsgi_pid()
        good = s.sup.spec.read_text()

        def inject() -> Callable[[], object]:
            s.sup.spec.write_text(good + "x: " + "[" * 5000 + "]" * 5000 + "\n")
            s.sup.signal(signal.SIGHUP)
            return lambda: "spec is invalid" in s.sup.log()

        row = under_load(s, "SIGHUP with a 5,000-deep spec", "4", "0 failed", inject)
        assert row.failed == 0, row
        assert s.sup.uwsgi_pid() == master and _state(s, "state") == "running"


def test_fifo_and_stats_socket_deleted(short_tmp: Path) -> None:
    with site(short_tmp) as s:
        rt = s.sup.runtime_dir
        master = s.sup.uwsgi_pid()

        def inject() -> Callable[[], object]:
            for link in ("master.fifo", "stats.sock"):
                (rt / os.readlink(rt / link)).unlink()  # a tmp cleaner's work
            return lambda: (
                _state(s, "uwsgi_pid") not in (None, master)
                and _state(s, "state") == "running"
                and (rt / "master.fifo").exists()
            )

        row = under_load(s, "FIFO and stats socket deleted", "11", "0 failed", inject)
        assert row.failed == 0, row
        assert s.sup.cli("status", str(s.sup.spec)).returncode == 0


def test_kill_9_of_the_master_with_nginx_as_www_data(short_tmp: Path) -> None:
    with site(short_tmp) as s:
        master = s.sup.uwsgi_pid()

        def inject() -> Callable[[], object]:
            os.kill(master, signal.SIGKILL)
            return lambda: _state(s, "uwsgi_pid") not in (None, master) and (
                _state(s, "state") == "running"
            )

        bound = f"at most the {PROCESSES} in flight"
        row = under_load(s, "`kill -9` of the uWSGI master", "12", bound, inject)
        assert row.failed <= PROCESSES, row  # never a 502 for a socket nginx may not open
        log = (short_tmp / "nginx" / "error.log").read_text()
        assert "Permission denied" not in log


def test_supervisor_killed_and_started_again(short_tmp: Path) -> None:
    with site(short_tmp) as s:
        master = s.sup.uwsgi_pid()
        assert s.sup.proc is not None

        def inject() -> Callable[[], object]:
            assert s.sup.proc is not None
            s.sup.proc.kill()
            s.sup.proc.wait()
            s.sup.start(wait_ready=False)  # as systemd's Restart= would
            return lambda: "adopted uWSGI pid" in s.sup.log() and _state(s, "state") == "running"

        row = under_load(s, "supervisor `kill -9`, started again", "13", "0 failed", inject)
        assert row.failed == 0, row
        assert s.sup.uwsgi_pid() == master and alive(master)


def test_master_sigstopped(short_tmp: Path) -> None:
    with site(short_tmp) as s:
        master = s.sup.uwsgi_pid()
        seen: list[subprocess.CompletedProcess[str]] = []

        def inject() -> Callable[[], object]:
            os.kill(master, signal.SIGSTOP)
            time.sleep(3.0)
            seen.append(subprocess.run(
                [*SUPERVISOR, "status", str(s.sup.spec)], capture_output=True, text=True
            ))
            os.kill(master, signal.SIGCONT)
            return lambda: _state(s, "state") == "running" and serves(s.port, "v1")

        try:
            row = under_load(s, "master SIGSTOPped for 3 s", "15", "0 failed", inject)
        finally:
            os.kill(master, signal.SIGCONT)
        assert row.failed == 0, row
        assert seen[0].returncode == 4 and "not answering" in seen[0].stdout, seen[0]


def test_runtime_disk_full(short_tmp: Path) -> None:
    """The runtime dir on its own small tmpfs, filled to the last byte: the app
    keeps serving, no temporary state file is left behind, and the state file
    is current again once space is back."""
    require(os.geteuid() == 0, "the full-disk fault mounts a tmpfs: that needs root")
    rt = short_tmp / "rt"
    rt.mkdir()
    options = "size=8m,mode=0711"  # room for uWSGI's capped log (2 x 1 MiB) when not full
    subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(rt)], check=True)
    try:
        with site(short_tmp) as s:
            filler = rt / "filler"

            def inject() -> Callable[[], object]:
                fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
                try:
                    while os.write(fd, b"\0" * 4096):
                        pass
                except OSError:
                    pass  # ENOSPC: the disk is full
                finally:
                    os.close(fd)
                time.sleep(4.0)  # state writes fail meanwhile
                assert [p.name for p in rt.glob(".state-*")] == []
                assert serves(s.port, "v1")
                filler.unlink()
                mark = s.sup.state().get("status")
                set_version(s.code, "v2")  # a push, so the state must change
                return lambda: serves(s.port, "v2") and s.sup.state().get("status") != mark

            row = under_load(s, "runtime disk full", "14", "0 failed", inject)
            assert row.failed == 0, row
            assert [p.name for p in rt.glob(".state-*")] == []
    finally:
        subprocess.run(["umount", "-l", str(rt)], check=False)
