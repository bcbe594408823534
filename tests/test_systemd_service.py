"""The supervisor as a systemd service: the shipped, hardened unit under a real systemd 252.

One throwaway systemd (tests/sysd.py) boots for the whole module with the shipped template
unit (only its ExecStart/ExecStartPre/ExecReload paths pointed at this checkout's venv). Each
test runs its own instance, ``uwsgi-supervisor@NAME``, with its own spec in
/etc/uwsgi-supervisor/NAME.yaml, its own copy of the blog test app in /srv/NAME (readable under
ProtectSystem=strict), its own loopback HTTP port and its own service user. Users are made the
way an admin would: ``useradd --system``, then ``uwsgi-supervisor render unit SPEC`` and
``render socket SPEC`` installed as the instance's drop-ins (the socket unit holds the app socket
and the HTTP listener). The acceptance criteria proven here:

* ``systemctl start`` returns only once the app answers HTTP (its import takes 1.5 s);
* ``systemctl status`` shows the supervisor's STATUS= line, and everything runs as the app's user;
* ``systemctl reload`` after a code change returns only once the new code serves;
* ``systemctl stop`` lets an in-flight request finish, then leaves no process and Result=success;
* ``kill -9`` of the supervisor: systemd restarts it, no process of the old uWSGI is left;
* a SIGSTOPped supervisor is killed by the watchdog and restarted;
* a broken spec fails the start with file:line:col in the journal, and is not retried.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import pytest
from kit.net import free_port, http_get
from sysd import REPO, UNIT_DIR, VENV_BIN, Systemd, boot_or_skip, shipped_template

pytestmark = [pytest.mark.systemd, pytest.mark.slow]

SUPERVISOR = str(VENV_BIN / "uwsgi-supervisor")
BLOG = (REPO / "tests" / "apps" / "blog" / "blog.py").read_text()
IMPORT_DELAY = 1.5  # seconds the app's import takes where a test needs a slow start or reload
WATCHDOG_SEC = 3


@dataclass(frozen=True)
class App:
    """One instance of the template: spec, app directory, port and service user."""

    name: str
    import_delay: float = 0.0
    watch: bool = True
    port: int = 0
    swap: bool = False  # watch.reload: swap (the health-checked, rolled-back kind)

    @property
    def unit(self) -> str:
        return f"uwsgi-supervisor@{self.name}.service"

    @property
    def user(self) -> str:
        return f"usup-{self.name}"

    @property
    def spec_path(self) -> str:
        return f"/etc/uwsgi-supervisor/{self.name}.yaml"

    @property
    def app_path(self) -> str:
        return f"/srv/{self.name}/blog.py"

    def spec(self) -> str:
        text = (
            f"user: {self.user}\n"
            "app:\n"
            '  module: "blog:app"\n'
            f"  chdir: /srv/{self.name}\n"
            f"  virtualenv: {REPO / '.venv'}\n"
            "uwsgi:\n"
            "  processes: 2\n"
            f"  socket: /run/uwsgi-supervisor/{self.name}.sock\n"  # the socket unit's
            f"  http: 127.0.0.1:{self.port}\n"
        )
        if not self.watch:
            text += "watch:\n  enabled: false\n" + ("  reload: swap\n" if self.swap else "")
        return text

    def source(self, version: str = "v1") -> str:
        """The blog test app, at this version, taking ``import_delay`` to import."""
        marker = 'VERSION = "v1"\n'
        assert marker in BLOG, "tests/apps/blog/blog.py no longer sets VERSION as expected"
        delay = f"time.sleep({self.import_delay})  # a slow import\n" if self.import_delay else ""
        return BLOG.replace(marker, f'VERSION = "{version}"\n{delay}')


DEMO = App("demo", import_delay=IMPORT_DELAY, port=free_port())
RELOAD = App("reload", import_delay=IMPORT_DELAY, watch=False, port=free_port())
STOP = App("stop", port=free_port())
CRASH = App("crash", port=free_port())
HANG = App("hang", port=free_port())
ROOTDROP = App("rootdrop", port=free_port())  # run by root; uWSGI drops to the spec's user
VERIFY = App("verify", watch=False, swap=True, port=free_port())
EVENTS = App("events", port=free_port())
GOOD_APPS = (DEMO, RELOAD, STOP, CRASH, HANG, ROOTDROP, VERIFY, EVENTS)

BROKEN = App("broken", port=free_port())
BROKEN_SPEC = BROKEN.spec().replace("  processes: 2\n", "  processes: two\n")
BROKEN_WHERE = (BROKEN_SPEC.splitlines().index("  processes: two") + 1, len("  processes: ") + 1)

# What an admin adds on top of the rendered drop-in to get a fast watchdog (and no core dump
# of the watchdog's SIGABRT anywhere).
HANG_WATCHDOG = f"[Service]\nWatchdogSec={WATCHDOG_SEC}s\nLimitCORE=0\n"
# A spec that does not load cannot be rendered: its drop-in is written by hand.
BROKEN_DROPIN = f"[Service]\nUser={BROKEN.user}\nGroup={BROKEN.user}\n"


# --- the booted systemd, shared by every test -------------------------------------------------


def _files() -> dict[str, str]:
    files = {a.spec_path: a.spec() for a in GOOD_APPS}
    files.update({a.app_path: a.source() for a in (*GOOD_APPS, BROKEN)})
    files[BROKEN.spec_path] = BROKEN_SPEC
    return files


# Inside the namespace, as root: one service user per app, then each good spec's drop-in.
SETUP_USERS = r"""
set -eu
supervisor=$1 unit_dir=$2; shift 2
for name in "$@"; do
    useradd --system --no-create-home --shell /usr/sbin/nologin "usup-$name"
done
for name in "$@"; do
    [ -f "/etc/uwsgi-supervisor/$name.yaml" ] || continue
    [ "$name" = broken ] && continue
    mkdir -p "$unit_dir/uwsgi-supervisor@$name.service.d" \
        "$unit_dir/uwsgi-supervisor@$name.socket.d"
    "$supervisor" render unit "/etc/uwsgi-supervisor/$name.yaml" \
        > "$unit_dir/uwsgi-supervisor@$name.service.d/override.conf"
    # The socket unit holds the HTTP listener too.
    "$supervisor" render socket "/etc/uwsgi-supervisor/$name.yaml" \
        > "$unit_dir/uwsgi-supervisor@$name.socket.d/override.conf"
done
"""


@pytest.fixture(scope="module")
def sd() -> Iterator[Systemd]:
    """One systemd with the shipped template, every app's files, users and drop-ins."""
    with boot_or_skip(units=shipped_template(), files=_files()) as booted:
        names = [a.name for a in (*GOOD_APPS, BROKEN)]
        booted.run(["sh", "-c", SETUP_USERS, "sh", SUPERVISOR, UNIT_DIR, *names], check=True)
        booted.write_unit(f"{HANG.unit}.d/watchdog.conf", HANG_WATCHDOG)
        booted.write_unit(f"{BROKEN.unit}.d/override.conf", BROKEN_DROPIN)
        booted.daemon_reload()
        yield booted


# --- helpers -----------------------------------------------------------------------------------


def get(app: App, path: str = "/", timeout: float = 10.0) -> tuple[int, str]:
    """GET from the app's uWSGI HTTP listener (the namespace shares the host's network)."""
    return http_get(f"127.0.0.1:{app.port}", path, timeout)


Identity = tuple[int, str]  # (host pid, start time): a pid alone may be reused


def identity(pid: int) -> Optional[Identity]:
    """A live (non-zombie) process's pid and start time; None once it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    if fields[0] in ("Z", "X"):
        return None
    return pid, fields[19]  # field 3 (state) is fields[0]; field 22 (starttime) fields[19]


def still_alive(identities: list[Identity]) -> list[Identity]:
    return [i for i in identities if identity(i[0]) == i]


def ns_pid(host_pid: int) -> Optional[int]:
    """The pid a process has in the namespace (what MainPID shows)."""
    try:
        for line in Path(f"/proc/{host_pid}/status").read_text().splitlines():
            if line.startswith("NSpid:"):
                return int(line.split()[-1])
    except OSError:
        pass
    return None


def processes(sd: Systemd, app: App) -> tuple[Identity, list[Identity]]:
    """The supervisor (MainPID) and every other process of the unit: uWSGI's."""
    main = int(sd.show(app.unit, "MainPID")["MainPID"])
    supervisor: Optional[Identity] = None
    others: list[Identity] = []
    for pid in sd.host_pids_in_unit(app.unit):
        ident = identity(pid)
        if ident is None:
            continue
        if ns_pid(pid) == main:
            supervisor = ident
        else:
            others.append(ident)
    assert supervisor is not None, f"MainPID {main} is not in {app.unit}'s cgroup"
    return supervisor, others


def uid_of(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Uid:"):
            return int(line.split()[1])
    raise AssertionError(f"no Uid: line for pid {pid}")


def start(sd: Systemd, app: App) -> float:
    """``systemctl start`` (a no-op if the instance already runs); returns how long it took."""
    began = time.monotonic()
    sd.start(app.unit)
    return time.monotonic() - began


# --- the tests ---------------------------------------------------------------------------------


def test_start_returns_once_the_app_answers_http(sd: Systemd) -> None:
    took = start(sd, DEMO)
    status, body = get(DEMO)  # the very first request, right after `systemctl start`
    assert (status, body.split(" pid=")[0]) == (200, "v1"), (status, body)
    assert took >= IMPORT_DELAY, f"start returned after {took:.2f}s; the import takes 1.5s"
    shown = sd.show(DEMO.unit, "ActiveState", "SubState", "NRestarts")
    assert shown == {"ActiveState": "active", "SubState": "running", "NRestarts": "0"}, shown
    print(f"systemctl start took {took:.2f}s")


def test_status_shows_the_supervisors_status_line_and_the_apps_user(sd: Systemd) -> None:
    start(sd, DEMO)
    assert get(DEMO)[0] == 200
    shown = sd.show(DEMO.unit, "StatusText", "User", "Group")
    assert shown["StatusText"].startswith("serving: 2/2 workers"), shown
    assert (shown["User"], shown["Group"]) == (DEMO.user, ""), shown  # render: the user's group
    status = sd.status(DEMO.unit)
    assert 'Status: "serving: 2/2 workers' in status, status
    uid = int(sd.run(["id", "-u", DEMO.user], check=True).stdout)
    supervisor, uwsgi = processes(sd, DEMO)
    assert len(uwsgi) >= 3, uwsgi  # master, 2 workers (and the HTTP router)
    owners = {pid: uid_of(pid) for pid, _ in (supervisor, *uwsgi)}
    assert set(owners.values()) == {uid}, owners


def test_reload_returns_once_the_new_code_serves(sd: Systemd) -> None:
    start(sd, RELOAD)
    status, body = get(RELOAD)
    assert (status, body.split(" pid=")[0]) == (200, "v1"), (status, body)
    main = sd.show(RELOAD.unit, "MainPID")["MainPID"]
    sd.write_file(RELOAD.app_path, RELOAD.source("v2"))  # watch is off: only reload loads it
    assert get(RELOAD)[1].startswith("v1 pid="), "v2 served before any reload"
    began = time.monotonic()
    sd.reload(RELOAD.unit)
    took = time.monotonic() - began
    began = time.monotonic()
    status, body = get(RELOAD)  # the first request after `systemctl reload` returned
    answered = time.monotonic() - began
    assert (status, body.split(" pid=")[0]) == (200, "v2"), (status, body)
    # Had reload returned early, this request would have waited for the 1.5 s import.
    assert answered < 1.0, f"the first request after reload took {answered:.2f}s"
    assert took >= IMPORT_DELAY, f"reload returned after {took:.2f}s; the import takes 1.5s"
    shown = sd.show(RELOAD.unit, "ActiveState", "MainPID", "NRestarts", "StatusText")
    assert shown["ActiveState"] == "active" and shown["MainPID"] == main, shown
    assert shown["NRestarts"] == "0", shown
    assert shown["StatusText"].startswith("serving: 2/2 workers"), shown
    # ExecReload (`uwsgi-supervisor reload --wait`) reports the outcome it waited for. (On 252 a
    # bare `kill -HUP` only sometimes makes systemctl wait: when RELOADING=1 beats its exit.)
    assert "reloaded: generation 2" in sd.journal(RELOAD.unit)
    print(f"systemctl reload took {took:.2f}s; first request after it {answered:.3f}s")


def test_reload_of_a_push_that_fails_on_request_fails_and_keeps_the_old_code(
    sd: Systemd,
) -> None:
    """`systemctl reload` (ExecReload: `reload --wait`) exits non-zero on a push that
    imports fine but answers 500: the health check refused it, the old code serves."""
    start(sd, VERIFY)
    assert get(VERIFY)[1].startswith("v1 pid=")
    broken = VERIFY.source("v2").replace(
        '    return f"{VERSION} pid={os.getpid()}\\n"', '    raise RuntimeError("no database")'
    )
    assert broken != VERIFY.source("v2"), "the blog app's index view changed"
    sd.write_file(VERIFY.app_path, broken)
    cp = sd.systemctl("reload", VERIFY.unit)
    assert cp.returncode != 0, cp.stdout + cp.stderr
    assert get(VERIFY)[1].startswith("v1 pid="), "the refused code serves"
    journal = sd.journal(VERIFY.unit)
    assert "swap refused: health check failed: GET / answered 500" in journal, journal[-3000:]
    shown = sd.show(VERIFY.unit, "ActiveState", "NRestarts", "StatusText")
    assert shown["ActiveState"] == "active" and shown["NRestarts"] == "0", shown
    assert "answered 500" in shown["StatusText"], shown
    # The fix reloads, and systemctl says so.
    sd.write_file(VERIFY.app_path, VERIFY.source("v3"))
    sd.reload(VERIFY.unit)
    assert get(VERIFY)[1].startswith("v3 pid=")


def _busy_workers(sd: Systemd, app: App) -> int:
    cp = sd.run([SUPERVISOR, "status", "--json", app.spec_path], check=True)
    workers = (json.loads(cp.stdout).get("uwsgi") or {}).get("workers", [])
    return sum(1 for w in workers if w.get("status") == "busy")


def test_stop_finishes_the_request_in_flight_and_leaves_nothing(sd: Systemd) -> None:
    start(sd, STOP)
    supervisor, uwsgi = processes(sd, STOP)
    result: dict[str, object] = {}

    def slow_request() -> None:
        try:
            result["response"] = get(STOP, "/slow?s=2", timeout=30)
        except Exception as exc:  # reported by the assertion below
            result["error"] = repr(exc)

    client = threading.Thread(target=slow_request, daemon=True)
    client.start()
    sd.wait_until("a worker busy with /slow", lambda: _busy_workers(sd, STOP), unit=STOP.unit)
    began = time.monotonic()
    sd.stop(STOP.unit)
    took = time.monotonic() - began
    client.join(timeout=30)
    assert result.get("response") == (200, "v1 slow done\n"), (result, sd.journal(STOP.unit))
    assert sd.host_pids_in_unit(STOP.unit) == []
    assert still_alive([supervisor, *uwsgi]) == [], "processes of the unit outlived its stop"
    shown = sd.show(STOP.unit, "ActiveState", "Result", "ExecMainStatus")
    assert shown == {"ActiveState": "inactive", "Result": "success", "ExecMainStatus": "0"}, (
        shown,
        sd.journal(STOP.unit),
    )
    print(f"systemctl stop took {took:.2f}s with a request in flight")


def test_kill_9_of_the_supervisor_restarts_it_without_orphans(sd: Systemd) -> None:
    start(sd, CRASH)
    status, before = get(CRASH)
    assert status == 200, before
    shown = sd.show(CRASH.unit, "MainPID", "NRestarts")
    supervisor, uwsgi = processes(sd, CRASH)
    assert len(uwsgi) >= 3, uwsgi
    sd.kill(CRASH.unit, "SIGKILL")
    again = sd.wait_for_state(CRASH.unit, "active", timeout=20, NRestarts="1")
    assert again["MainPID"] not in ("0", shown["MainPID"]), again
    status, after = get(CRASH)
    assert status == 200 and after.startswith("v1 pid=") and after != before, (before, after)
    assert still_alive([supervisor, *uwsgi]) == [], (
        f"processes of the old instance survived the supervisor's SIGKILL: "
        f"{still_alive([supervisor, *uwsgi])}\n{sd.journal(CRASH.unit)}"
    )
    _, new_uwsgi = processes(sd, CRASH)
    assert len(new_uwsgi) == len(uwsgi), (uwsgi, new_uwsgi)


def test_a_crash_is_in_the_state_directory_and_the_journal_as_a_structured_entry(
    sd: Systemd,
) -> None:
    """The event history under the shipped unit: StateDirectory= keeps it, `events`
    (run as root, as an admin would) reads it, journald has its fields."""
    start(sd, EVENTS)
    status = sd.run([SUPERVISOR, "status", "--json", EVENTS.spec_path], check=True)
    master = json.loads(status.stdout)["supervisor"]["uwsgi_pid"]
    sd.run(["kill", "-9", str(master)], check=True)

    def crashes() -> list[dict[str, object]]:
        out = sd.run([SUPERVISOR, "events", "--json", EVENTS.spec_path], check=True).stdout
        return [e for e in map(json.loads, out.splitlines()) if e["event"] == "crash"]

    crash = sd.wait_until("the crash in `events`", crashes, timeout=30)[0]
    assert crash["how"] == "killed by SIGKILL", crash
    history = f"/var/lib/uwsgi-supervisor/{EVENTS.name}/events.jsonl"
    owner = sd.run(["stat", "-c", "%U %a", history], check=True).stdout.split()
    assert owner == [EVENTS.user, "600"], owner
    entries = sd.wait_until(
        "the crash's journal entry",
        lambda: sd.run(
            ["journalctl", "-o", "json", "UWSGI_SUPERVISOR_EVENT=crash",
             f"UWSGI_SUPERVISOR_APP={EVENTS.name}"]
        ).stdout.splitlines(),
        timeout=10,
    )  # fmt: skip
    entry = json.loads(entries[0])
    assert entry["UWSGI_SUPERVISOR_HOW"] == "killed by SIGKILL", entry
    assert entry["MESSAGE"].startswith(f"{EVENTS.name}: crash 1: uWSGI killed by SIGKILL"), entry
    assert entry["PRIORITY"] == "3" and entry["SYSLOG_IDENTIFIER"] == "uwsgi-supervisor", entry
    assert get(EVENTS)[0] == 200  # and it serves again


def test_watchdog_kills_and_restarts_a_hung_supervisor(sd: Systemd) -> None:
    start(sd, HANG)
    shown = sd.show(HANG.unit, "MainPID", "WatchdogUSec")
    assert shown["WatchdogUSec"] == f"{WATCHDOG_SEC}s", shown
    # Longer than the watchdog period: the supervisor's pings keep a healthy service alive.
    time.sleep(WATCHDOG_SEC + 0.5)
    alive = sd.show(HANG.unit, "ActiveState", "NRestarts", "MainPID")
    assert alive == {"ActiveState": "active", "NRestarts": "0", "MainPID": shown["MainPID"]}
    supervisor, uwsgi = processes(sd, HANG)
    sd.kill(HANG.unit, "SIGSTOP")
    # Result=watchdog lasts from the kill until the restart (RestartSec=1s) resets it.
    sd.wait_until(
        "Result=watchdog",
        lambda: sd.show(HANG.unit, "Result")["Result"] == "watchdog",
        timeout=WATCHDOG_SEC + 10,
        unit=HANG.unit,
    )
    again = sd.wait_for_state(HANG.unit, "active", timeout=20, NRestarts="1")
    assert again["MainPID"] not in ("0", shown["MainPID"]), again
    assert "Watchdog timeout" in sd.journal(HANG.unit)
    status, body = get(HANG)
    assert status == 200 and body.startswith("v1 pid="), body
    assert still_alive([supervisor, *uwsgi]) == [], "the hung instance left processes behind"


def test_broken_spec_fails_the_start_with_its_location_and_no_restart_loop(sd: Systemd) -> None:
    cp = sd.systemctl("start", BROKEN.unit)
    assert cp.returncode != 0, cp.stdout + cp.stderr
    line, col = BROKEN_WHERE
    where = f"{BROKEN.spec_path}:{line}:{col}: uwsgi.processes"
    journal = sd.wait_for_journal(BROKEN.unit, where)
    assert re.search(re.escape(where) + r".*whole number", journal), journal
    time.sleep(3.5)  # RestartSec=1s: a restart loop would have restarted it by now
    shown = sd.show(BROKEN.unit, "ActiveState", "NRestarts", "ExecMainStatus", "Result")
    assert shown == {
        "ActiveState": "failed",
        "NRestarts": "0",
        "ExecMainStatus": "78",
        "Result": "exit-code",
    }, (shown, journal)


def test_a_root_supervisor_runs_uwsgi_and_the_import_check_as_the_spec_user(sd: Systemd) -> None:
    """Without User= in the unit, the spec's `user:` is what uWSGI runs as: its uid,
    its group, and none of root's groups."""
    unit = "usup-rootdrop.service"
    sd.write_unit(
        unit,
        "[Service]\nType=notify\nNotifyAccess=main\n"
        f"ExecStart={SUPERVISOR} run {ROOTDROP.spec_path}\n",
    )
    sd.daemon_reload()
    sd.start(unit)
    try:
        assert get(ROOTDROP)[0] == 200
        uid = sd.run(["id", "-u", ROOTDROP.user], check=True).stdout.strip()
        main = int(sd.show(unit, "MainPID")["MainPID"])
        uwsgi = [p for p in sd.host_pids_in_unit(unit) if ns_pid(p) != main]
        assert uwsgi, "no uWSGI process in the unit"
        for pid in uwsgi:
            status = Path(f"/proc/{pid}/status").read_text().splitlines()
            uids = next(line for line in status if line.startswith("Uid:")).split()[1:]
            groups = next(line for line in status if line.startswith("Groups:")).split()[1:]
            assert uids == [uid] * 4, (pid, uids)
            assert "0" not in groups, (pid, groups)
        # A code push is import-checked as that user too, and then served.
        sd.write_file(ROOTDROP.app_path, ROOTDROP.source("v2"))
        deadline = time.monotonic() + 30
        while get(ROOTDROP)[1].split()[0] != "v2":
            assert time.monotonic() < deadline, sd.journal(unit)[-3000:]
            time.sleep(0.2)
    finally:
        sd.stop(unit)
