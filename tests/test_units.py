"""The shipped systemd units, and the systemd test harness (tests/sysd.py) proving itself.

* systemd-analyze rates the units' hardening and verifies them (no manager needed); the
  socket unit's path is outside the service's RuntimeDirectory, and only its group may connect.
* A tiny Type=notify service under a real, throwaway systemd shows that the harness sees what
  the supervisor's systemd tests will rely on: READY=1, STATUS=, the watchdog, stop, and
  RestartPreventExitStatus= (which ignores ExecStartPre, hence the unit's "-" on its check);
  files, units and deletions inside stay in the overlay.
* The shipped unit's hardening still runs a uWSGI Flask app, and the supervisor itself.
"""

from __future__ import annotations

import contextlib
import re
import secrets
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sysd import REPO, Systemd, boot_or_skip, ci_strict, shipped_template, with_venv_binary

pytestmark = pytest.mark.systemd

UNITS = REPO / "units"
TEMPLATE = UNITS / "uwsgi-supervisor@.service"
SOCKET = UNITS / "uwsgi-supervisor@.socket"
EXAMPLE = UNITS / "uwsgi-supervisor-example.service"
SHIPPED = (TEMPLATE, EXAMPLE)
MAX_EXPOSURE = 2.0
PYTHON = REPO / ".venv" / "bin" / "python"
UWSGI = REPO / ".venv" / "bin" / "uwsgi"


def need(tool: str) -> str:
    """The tool's path; skip without it (fail under CI=true)."""
    path = shutil.which(tool)
    if path is None:
        reason = f"{tool} not found (install systemd)"
        if ci_strict():
            pytest.fail(reason)
        print(f"SKIP: {reason}")
        pytest.skip(reason)
    return path


@pytest.fixture(scope="module", autouse=True)
def host_canary() -> Iterator[Path]:
    """A file in the host's /tmp that every boot and teardown in this module must leave alone."""
    path = Path("/tmp") / f"canary-{secrets.token_hex(8)}"
    path.write_text("a test systemd must never touch the host's /tmp\n")
    yield path
    assert path.exists(), f"{path} vanished: a test systemd touched the host's /tmp"
    path.unlink()


# --- the shipped units, offline ---------------------------------------------------------------


@pytest.mark.parametrize("unit", SHIPPED, ids=lambda p: p.name)
def test_security_exposure_is_ok(unit: Path) -> None:
    analyze = need("systemd-analyze")
    cp = subprocess.run(
        [analyze, "security", "--offline=yes", "--no-pager", str(unit)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    found = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", cp.stdout)
    assert found, f"no exposure figure in:\n{cp.stdout}\n{cp.stderr}"
    exposure = float(found.group(1))
    print(f"{unit.name}: exposure {exposure}")
    assert exposure <= MAX_EXPOSURE, f"{unit.name}: {exposure} > {MAX_EXPOSURE}\n{cp.stdout}"


@pytest.mark.parametrize("unit", SHIPPED, ids=lambda p: p.name)
def test_verify_is_clean(unit: Path, tmp_path: Path) -> None:
    analyze = need("systemd-analyze")
    text = unit.read_text()
    execs = [ln for ln in text.splitlines() if ln.startswith("Exec")]
    assert len(execs) == 3 and all("/usr/bin/uwsgi-supervisor " in ln for ln in execs), execs
    # Packages install the binary in /usr/bin; verify checks it exists, so use the venv's.
    copy = tmp_path / unit.name
    copy.write_text(with_venv_binary(text))
    # The template requires its socket unit: verify looks for it beside the file.
    (tmp_path / SOCKET.name).write_text(SOCKET.read_text())
    cp = subprocess.run(
        [analyze, "verify", "--man=no", str(copy)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert (cp.returncode, cp.stdout + cp.stderr) == (0, ""), cp.stdout + cp.stderr


def unit_settings(text: str) -> dict[str, list[str]]:
    """``Key=value`` lines of a unit, every value of each key in order (comments left out)."""
    settings: dict[str, list[str]] = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep and not line.startswith("#"):
            settings.setdefault(key, []).append(value)
    return settings


def test_socket_unit_verifies_clean(tmp_path: Path) -> None:
    analyze = need("systemd-analyze")
    for unit in (SOCKET, TEMPLATE):
        (tmp_path / unit.name).write_text(with_venv_binary(unit.read_text()))
    cp = subprocess.run(
        [analyze, "verify", "--man=no", str(tmp_path / SOCKET.name)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert (cp.returncode, cp.stdout + cp.stderr) == (0, ""), cp.stdout + cp.stderr


def test_socket_unit_outlives_the_services_runtime_directory() -> None:
    socket = unit_settings(SOCKET.read_text())
    service = unit_settings(TEMPLATE.read_text())
    assert socket["ListenStream"] == ["/run/uwsgi-supervisor/%i.sock"]
    # systemd deletes RuntimeDirectory= whenever the service stops: the socket lives beside it.
    assert service["RuntimeDirectory"] == ["uwsgi-supervisor/%i"]
    assert not socket["ListenStream"][0].startswith("/run/uwsgi-supervisor/%i/")
    # Only nginx's group connects; nobody else may reach the uwsgi protocol.
    owner = (socket["SocketUser"], socket["SocketGroup"], socket["SocketMode"])
    assert owner == (["root"], ["www-data"], ["0660"]), owner
    assert socket["DirectoryMode"] == ["0755"]
    assert socket["FileDescriptorName"] == ["app"]
    assert socket["WantedBy"] == ["sockets.target"]
    assert "Service" not in socket, "the service of the same name gets the socket"
    assert service["Requires"] == ["uwsgi-supervisor@%i.socket"]
    assert "uwsgi-supervisor@%i.socket" in service["After"][0].split()
    assert service["Also"] == ["uwsgi-supervisor@%i.socket"]
    # The comments tell users what the spec must say.
    for unit in (SOCKET, TEMPLATE):
        assert "socket: /run/uwsgi-supervisor/APP.sock" in unit.read_text(), unit.name
        assert "uwsgi-supervisor render socket" in unit.read_text(), unit.name


# --- the harness, with a tiny Type=notify service ---------------------------------------------

NOTIFY_SERVICE = """\
import os, signal, sys, time
import sdnotify

notifier = sdnotify.SystemdNotifier()

def say(msg):
    print(msg, flush=True)

def on_sigterm(signum, frame):
    notifier.notify("STOPPING=1")
    say("got SIGTERM, stopping")
    sys.exit(0)

signal.signal(signal.SIGTERM, on_sigterm)
notifier.notify("STATUS=warming up")
time.sleep(float(os.environ.get("READY_DELAY", "0")))
if "EXIT_CODE" in os.environ:
    say("exiting " + os.environ["EXIT_CODE"] + " before READY")
    sys.exit(int(os.environ["EXIT_CODE"]))
with open("/run/notify-ready", "w") as f:
    f.write(str(os.getpid()))
notifier.notify("READY=1\\nSTATUS=serving")
say("ready")
period = int(os.environ.get("WATCHDOG_USEC", "0")) / 1e6
while True:
    time.sleep(period / 4 if period else 1)
    if period:
        notifier.notify("WATCHDOG=1")
"""
SCRIPT_PATH = "/opt/sysd-selftest/notify_service.py"


def notify_unit(*settings: str, **env: str) -> str:
    """A Type=notify unit running NOTIFY_SERVICE with extra [Service] lines and environment."""
    lines = [f"Environment={k}={v}" for k, v in env.items()] + list(settings)
    return (
        "[Unit]\nDescription=harness self-test service\n\n"
        "[Service]\nType=notify\nNotifyAccess=main\n"
        f"ExecStart={PYTHON} {SCRIPT_PATH}\n"
        # A watchdog kill is SIGABRT: no core dump into the overlay, please.
        "LimitCORE=0\n" + "".join(f"{line}\n" for line in lines)
    )


def boot_notify(**units: str) -> contextlib.AbstractContextManager[Systemd]:
    """Boot with these units and the notify service's script."""
    return boot_or_skip(units=units, files={SCRIPT_PATH: NOTIFY_SERVICE})


def test_start_returns_only_after_ready_and_status_shows() -> None:
    with boot_notify(**{"notify.service": notify_unit(READY_DELAY="2")}) as sd:
        began = time.monotonic()
        starter = subprocess.Popen(
            sd.nsenter_cmd(["systemctl", "start", "notify.service"]),
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip
        try:
            sd.wait_for_state("notify.service", "activating", StatusText="warming up")
            assert starter.poll() is None, "systemctl start returned before READY=1"
            out, _ = starter.communicate(timeout=30)
        finally:
            if starter.poll() is None:
                starter.kill()
                starter.wait()
        took = time.monotonic() - began
        assert starter.returncode == 0, out
        shown = sd.show("notify.service", "ActiveState", "SubState", "StatusText", "MainPID")
        assert shown["ActiveState"] == "active", shown
        assert shown["StatusText"] == "serving", shown
        assert sd.read_file("/run/notify-ready") == shown["MainPID"]
        assert took >= 2, f"systemctl start returned after {took:.2f}s, READY came after 2s"


def test_watchdog_restarts_a_service_that_stops_pinging() -> None:
    unit = notify_unit("WatchdogSec=1500ms", "Restart=on-failure", "RestartSec=100ms")
    with boot_notify(**{"notify.service": unit}) as sd:
        sd.start("notify.service")
        first = sd.show("notify.service", "MainPID")["MainPID"]
        time.sleep(3.2)  # over two watchdog periods: the pings keep it alive
        shown = sd.show("notify.service", "ActiveState", "NRestarts", "MainPID")
        assert shown == {"ActiveState": "active", "NRestarts": "0", "MainPID": first}, shown
        sd.kill("notify.service", "SIGSTOP")
        again = sd.wait_for_state("notify.service", "active", NRestarts="1", timeout=15)
        assert again["MainPID"] not in ("0", first), again
        assert "Watchdog timeout" in sd.journal("notify.service")


def test_stop_sends_sigterm_and_ends_cleanly() -> None:
    with boot_notify(**{"notify.service": notify_unit()}) as sd:
        sd.start("notify.service")
        pids = sd.pids_in_unit("notify.service")
        assert pids == [int(sd.show("notify.service", "MainPID")["MainPID"])]
        sd.stop("notify.service")
        shown = sd.show("notify.service", "ActiveState", "Result", "ExecMainStatus")
        assert shown == {"ActiveState": "inactive", "Result": "success", "ExecMainStatus": "0"}
        sd.wait_for_journal("notify.service", "got SIGTERM, stopping")
        assert sd.pids_in_unit("notify.service") == []


def test_exit_78_is_not_restarted_but_exit_1_is() -> None:
    restart = ("Restart=on-failure", "RestartSec=100ms", "RestartPreventExitStatus=78")
    with boot_notify(
        **{
            "exit78.service": notify_unit(*restart, EXIT_CODE="78"),
            "exit1.service": notify_unit(*restart, EXIT_CODE="1"),
        }
    ) as sd:
        assert sd.systemctl("start", "exit78.service").returncode != 0
        assert sd.systemctl("start", "exit1.service").returncode != 0
        # Once exit1 (started second) has been restarted, exit78 would have been too.
        sd.wait_until(
            "exit1.service to be restarted",
            lambda: sd.show("exit1.service", "NRestarts")["NRestarts"] not in ("", "0"),
            unit="exit1.service",
        )
        shown = sd.show("exit78.service", "ActiveState", "NRestarts", "ExecMainStatus")
        assert shown == {"ActiveState": "failed", "NRestarts": "0", "ExecMainStatus": "78"}, (
            shown,
            sd.journal("exit78.service"),
        )


def test_exec_start_pre_failure_ignores_restart_prevent_exit_status() -> None:
    """Why the shipped unit's ExecStartPre check carries "-": systemd would retry it."""
    unit = notify_unit(
        "ExecStartPre=/bin/sh -c 'exit 78'",
        "Restart=on-failure",
        "RestartSec=100ms",
        "RestartPreventExitStatus=78",
    )
    with boot_notify(**{"pre78.service": unit}) as sd:
        assert sd.systemctl("start", "pre78.service").returncode != 0
        sd.wait_until(
            "pre78.service to be restarted despite RestartPreventExitStatus=78",
            lambda: sd.show("pre78.service", "NRestarts")["NRestarts"] not in ("", "0"),
            unit="pre78.service",
        )


def test_files_units_and_deletions_stay_in_the_overlay(host_canary: Path) -> None:
    marker = f"/etc/sysd-selftest-{secrets.token_hex(4)}.yaml"
    with boot_or_skip(files={marker: "app: demo\n"}) as sd:
        assert sd.read_file(marker) == "app: demo\n"
        sd.write_file("/etc/sysd-selftest/later.conf", "x = 1\n", mode=0o600)
        assert sd.read_file("/etc/sysd-selftest/later.conf") == "x = 1\n"
        sd.run(["rm", "-f", str(host_canary)], check=True)
        assert sd.run(["test", "-e", str(host_canary)]).returncode == 1
        assert host_canary.exists(), "deleting inside the namespace reached the host"
        assert not Path(marker).exists(), "a file for the namespace landed on the host"
        assert not Path("/etc/sysd-selftest").exists()
        units = sd.show(None, "UnitPath")["UnitPath"].split()
        assert units == ["/run/sysd-harness/units"], units
        oneshot = "[Service]\nType=oneshot\nRemainAfterExit=yes\nExecStart=/bin/true\n"
        sd.write_unit("later.service", oneshot)
        sd.daemon_reload()
        sd.start("later.service")
        assert sd.show("later.service", "ActiveState") == {"ActiveState": "active"}
    assert host_canary.exists()


# --- the shipped unit's hardening runs a uWSGI Flask app --------------------------------------

FLASK_APP = """\
import os, pwd
import flask

app = flask.Flask(__name__)

def writable(path):
    try:
        with open(path, "w"):
            return "writable"
    except OSError as e:
        return e.strerror

@app.route("/")
def index():
    return {
        "user": pwd.getpwuid(os.getuid()).pw_name,
        "runtime_dir": writable("/run/uwsgi-supervisor/demo/probe"),
        "app_dir": writable("/srv/demo/probe"),
    }
"""
# The supervisor is not what is tested here: uWSGI runs directly (it sends READY=1 itself),
# under every other line of the shipped unit, including User=www-data.
UWSGI_DROPIN = f"""\
[Service]
ExecStartPre=
ExecStart=
ExecStart={UWSGI} --master --need-app --processes 2 \\
    --http-socket /run/uwsgi-supervisor/%i/http.sock --chmod-socket=660 \\
    --wsgi-file /srv/%i/app.py --callable app \\
    --stats /run/uwsgi-supervisor/%i/stats.sock --stats-no-cores \\
    --master-fifo /run/uwsgi-supervisor/%i/master.fifo
ExecReload=
ExecReload=/bin/kill -HUP $MAINPID
WatchdogSec=0
KillSignal=SIGINT
"""


HTTP_GET = """\
import socket, sys
s = socket.socket(socket.AF_UNIX)
s.connect(sys.argv[1])
s.sendall(b"GET / HTTP/1.0\\r\\nHost: app\\r\\n\\r\\n")
print(b"".join(iter(lambda: s.recv(65536), b"")).partition(b"\\r\\n\\r\\n")[2].decode())
"""


def test_shipped_hardening_runs_a_uwsgi_flask_app() -> None:
    unit = "uwsgi-supervisor@demo.service"
    with boot_or_skip(
        units=shipped_template(),
        dropins={f"{unit}.d/uwsgi-directly.conf": UWSGI_DROPIN},
        files={"/srv/demo/app.py": FLASK_APP, "/etc/uwsgi-supervisor/demo.yaml": "{}\n"},
    ) as sd:
        sd.start(unit)
        sock = "/run/uwsgi-supervisor/demo/http.sock"
        cp = sd.run([str(PYTHON), "-c", HTTP_GET, sock], check=True)
        assert cp.stdout.strip() == (
            '{"app_dir":"Read-only file system","runtime_dir":"writable","user":"www-data"}'
        )
        stat = sd.run(["stat", "-c", "%U:%G %a", "/run/uwsgi-supervisor/demo"], check=True)
        assert stat.stdout.split() == ["www-data:www-data", "750"]
        assert len(sd.pids_in_unit(unit)) == 3  # master and two workers
        sd.stop(unit)
        assert sd.pids_in_unit(unit) == []


# --- the shipped unit runs the supervisor ------------------------------------------------------

DEMO_SPEC = f"""\
name: demo
app:
  module: "app:app"
  chdir: /srv/demo
  virtualenv: {REPO / ".venv"}
uwsgi:
  processes: 2
  socket: /run/uwsgi-supervisor/demo.sock
"""
DEMO_APP = """\
import flask

app = flask.Flask(__name__)

@app.route("/")
def index():
    return "hello from demo"
"""
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


def test_shipped_unit_runs_the_supervisor() -> None:
    """Smoke test of the unit as shipped (binary from the venv): start, serve, reload, stop."""
    unit = "uwsgi-supervisor@demo.service"
    with boot_or_skip(
        units=shipped_template(),
        files={"/etc/uwsgi-supervisor/demo.yaml": DEMO_SPEC, "/srv/demo/app.py": DEMO_APP},
    ) as sd:
        sd.start(unit)
        shown = sd.show(unit, "ActiveState", "MainPID", "StatusText", "User")
        assert shown["ActiveState"] == "active" and shown["User"] == "www-data", shown
        assert shown["StatusText"].startswith("serving"), shown
        sock = "/run/uwsgi-supervisor/demo.sock"  # the socket unit's
        get = [str(PYTHON), "-c", UWSGI_GET, sock]
        assert sd.run(get, check=True).stdout.strip() == "hello from demo"
        assert "held by systemd" in sd.journal(unit), "the socket unit's socket was not adopted"
        sd.reload(unit)  # returns once the supervisor reports the reload done
        again = sd.show(unit, "ActiveState", "MainPID")
        assert again == {"ActiveState": "active", "MainPID": shown["MainPID"]}, again
        assert sd.run(get, check=True).stdout.strip() == "hello from demo"
        sd.stop(unit)
        stopped = sd.show(unit, "ActiveState", "Result")
        assert stopped == {"ActiveState": "inactive", "Result": "success"}, sd.journal(unit)
        assert sd.pids_in_unit(unit) == []
