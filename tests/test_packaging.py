"""packaging/: the .deb built for real, taken apart, run and installed; the RPM spec checked.

* ``packaging/deb/build`` makes ``uwsgi-supervisor_<version>_<arch>.deb``; ``dpkg-deb -c/-I/-f``
  show every file where it belongs, owned by root, the unit and examples byte for byte the
  checkout's, the logrotate snippet its one conffile, and the maintainer scripts and md5sums
  that should be there.
* The packaged ``/usr/bin/uwsgi-supervisor --version`` runs, with the virtualenv's absolute
  paths resolved by a bind mount at /opt/uwsgi-supervisor inside ``unshare --mount``: the
  host's /opt is never touched (checked).
* The maintainer scripts, run with a fake ``systemctl`` and ``deb-systemd-invoke``, reload
  systemd only when it runs, restart the running instances on upgrade (through
  ``deb-systemd-invoke``, which honours policy-rc.d, as debhelper's scripts do), stop the
  instances and their socket units only on removal, and never enable or start anything.
* Under a real systemd (tests/sysd.py): ``dpkg -i`` starts nothing, the packaged units and
  virtualenv serve an app through the socket unit, a reinstall (the upgrade path) restarts it
  (a new MainPID) on the same socket, and ``dpkg -r`` stops it and keeps the spec. A real
  upgrade to a newer version under load is tests/test_socket_unit.py's.
* The RPM spec's Version is ``supervisor.__version__``, it ships the same units, and its
  scriptlets restart the running instances on upgrade.
"""

from __future__ import annotations

import http.client
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import pytest
from conftest import require
from kit.deb import SYSTEM_PYTHON, opt_entries
from kit.net import free_port
from sysd import REPO, Systemd, boot_or_skip

from supervisor import __version__

DEB = REPO / "packaging" / "deb"
RPM_SPEC = REPO / "packaging" / "rpm" / "uwsgi-supervisor.spec"
PREFIX = "/opt/uwsgi-supervisor"
UNIT = "uwsgi-supervisor@.service"
SOCKET_UNIT = "uwsgi-supervisor@.socket"
MAINTAINER_SCRIPTS = ("postinst", "prerm", "postrm")
# systemctl verbs a maintainer script must never use: restarts and stops go through
# deb-systemd-invoke (which asks policy-rc.d first), and nothing is enabled or started.
FORBIDDEN_VERBS = {"enable", "start", "restart", "try-restart", "reload-or-restart", "reenable",
                   "preset", "isolate", "stop"}  # fmt: skip


# --- building and reading the .deb --------------------------------------------------------------


@dataclass(frozen=True)
class Entry:
    """One line of ``dpkg-deb -c``."""

    mode: str
    owner: str
    target: Optional[str]  # symlinks only


def run(argv: list[str], timeout: float = 60) -> str:
    cp = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    assert cp.returncode == 0, f"{' '.join(argv)} exited {cp.returncode}:\n{cp.stdout}{cp.stderr}"
    return cp.stdout


def unshare_mount() -> list[str]:
    """A private mount namespace: as root directly, else through a user namespace."""
    if os.geteuid() == 0:
        return ["unshare", "--mount", "--propagation", "private"]
    return ["unshare", "--map-root-user", "--mount", "--propagation", "private"]


def python_minor() -> str:
    return run([SYSTEM_PYTHON, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"]).strip()


@pytest.fixture(scope="module")
def host_opt() -> Iterator[list[str]]:
    """The host's /opt before the tests here; it must be the same after every one
    (kit.deb.build_deb checks the build itself the same way)."""
    before = opt_entries()
    yield before
    assert opt_entries() == before, "running the package changed the host's /opt"


@pytest.fixture(scope="module")
def deb(host_opt: list[str], checkout_deb: Path) -> Path:
    return checkout_deb


@pytest.fixture(scope="module")
def contents(deb: Path) -> dict[str, Entry]:
    """``dpkg-deb -c``, by path without the leading ``.``."""
    entries = {}
    for line in run(["dpkg-deb", "-c", str(deb)]).splitlines():
        mode, owner, _size, _date, _time, rest = line.split(maxsplit=5)
        path, _, target = rest.partition(" -> ")
        entries[path[1:].rstrip("/") or "/"] = Entry(mode, owner, target or None)
    return entries


@pytest.fixture(scope="module")
def extracted(deb: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("root")
    run(["dpkg-deb", "-x", str(deb), str(root)])
    return root


@pytest.fixture(scope="module")
def control_dir(deb: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    control = tmp_path_factory.mktemp("control") / "DEBIAN"
    run(["dpkg-deb", "-e", str(deb), str(control)])
    return control


def field(deb: Path, name: str) -> str:
    return run(["dpkg-deb", "-f", str(deb), name]).strip()


def in_package_root(root: Path, script: str) -> subprocess.CompletedProcess[str]:
    """Run ``script`` with the extracted package's /opt/uwsgi-supervisor at its real path."""
    setup = (f'mount -t tmpfs -o mode=0755 pkg-test /opt && mkdir {PREFIX} '
             f'&& mount --bind "$1{PREFIX}" {PREFIX} && shift && exec sh -c "$@"')  # fmt: skip
    argv = [*unshare_mount(), "sh", "-c", setup, "sh", str(root), script]
    return subprocess.run(argv, capture_output=True, text=True, timeout=60)


# --- the .deb -----------------------------------------------------------------------------------

slow = pytest.mark.slow


@slow
def test_deb_is_named_and_described_for_this_version(deb: Path) -> None:
    arch = run(["dpkg", "--print-architecture"]).strip()
    assert deb.name == f"uwsgi-supervisor_{__version__}_{arch}.deb"
    assert field(deb, "Package") == "uwsgi-supervisor"
    assert field(deb, "Version") == __version__
    assert field(deb, "Architecture") == arch
    assert field(deb, "Recommends") == "nginx"
    assert field(deb, "Maintainer")
    depends = [d.strip().split()[0] for d in field(deb, "Depends").split(",")]
    minor = python_minor()
    # The virtualenv runs this exact interpreter, and uwsgi links its libpython.
    assert f"python{minor}" in depends
    assert f"libpython{minor}" in depends
    assert "libc6" in depends


@slow
def test_deb_puts_every_file_in_its_place(contents: dict[str, Entry]) -> None:
    minor = python_minor()
    assert contents["/usr/bin/uwsgi-supervisor"].target == f"{PREFIX}/bin/uwsgi-supervisor"
    assert contents[f"{PREFIX}/bin/python{minor}"].target == f"/usr/bin/python{minor}"
    for path in (f"{PREFIX}/bin/uwsgi-supervisor", f"{PREFIX}/bin/uwsgi"):
        assert contents[path].mode == "-rwxr-xr-x", path
    assert contents[f"/lib/systemd/system/{UNIT}"].mode == "-rw-r--r--"
    assert contents[f"/lib/systemd/system/{SOCKET_UNIT}"].mode == "-rw-r--r--"
    assert contents["/etc/uwsgi-supervisor"].mode.startswith("d")
    assert [p for p in contents if p.startswith("/etc/")] == [
        "/etc/logrotate.d", "/etc/logrotate.d/uwsgi-supervisor", "/etc/uwsgi-supervisor"
    ], "nothing but the empty spec directory and the logrotate snippet: no spec is activated"
    assert contents["/etc/logrotate.d/uwsgi-supervisor"].mode == "-rw-r--r--"
    assert contents["/var/log/uwsgi-supervisor"].mode == "drwxr-xr-x"  # the apps' users pass
    doc = "/usr/share/doc/uwsgi-supervisor"
    for name in (
        "README.md",
        "copyright",
        "example.yaml",
        "uwsgi-supervisor-example.service",
        "nginx/uwsgi-supervisor-example.conf",
        "nginx/uwsgi-supervisor-example-bbb.conf",
    ):
        assert f"{doc}/{name}" in contents, name  # fmt: skip
    site = f"{PREFIX}/lib/python{minor}/site-packages"
    for module in ("supervisor/cli.py", "yaml/__init__.py", "watchdog/__init__.py", "sdnotify"):
        assert any(p.startswith(f"{site}/{module}") for p in contents), module
    assert not [p for p in contents if p.startswith(f"{PREFIX}/bin/pip")], "pip left in the venv"
    allowed = ("/etc/uwsgi-supervisor", "/lib/systemd/system", PREFIX, "/usr/bin/uwsgi-supervisor",
               doc, "/etc/logrotate.d/uwsgi-supervisor", "/var/log/uwsgi-supervisor")  # fmt: skip
    parents = {"/", "/etc", "/lib", "/lib/systemd", "/opt", "/usr", "/usr/bin", "/usr/share",
               "/usr/share/doc", "/etc/logrotate.d", "/var", "/var/log"}  # fmt: skip
    strays = [p for p in contents if p not in parents and not p.startswith(allowed)]
    assert not strays, f"files outside the package's places: {strays}"
    assert {e.owner for e in contents.values()} == {"root/root"}


@slow
def test_deb_ships_the_checkouts_unit_and_examples(extracted: Path) -> None:
    doc = extracted / "usr/share/doc/uwsgi-supervisor"
    example_unit = "uwsgi-supervisor-example.service"
    same = {
        extracted / "lib/systemd/system" / UNIT: REPO / "units" / UNIT,
        extracted / "lib/systemd/system" / SOCKET_UNIT: REPO / "units" / SOCKET_UNIT,
        doc / "README.md": REPO / "README.md",
        doc / "example.yaml": REPO / "etc" / "example.yaml",
        doc / example_unit: REPO / "units" / example_unit,
        extracted / "etc/logrotate.d/uwsgi-supervisor": REPO / "etc/logrotate.d/uwsgi-supervisor",
    }
    same.update({doc / "nginx" / c.name: c for c in (REPO / "etc" / "nginx").glob("*.conf")})
    for packaged, original in same.items():
        assert packaged.read_bytes() == original.read_bytes(), packaged
    copyright_text = (doc / "copyright").read_text()
    assert re.search(r"^ uWSGI \S+: ", copyright_text, re.M), copyright_text


@slow
def test_deb_control_area(deb: Path, control_dir: Path, contents: dict[str, Entry]) -> None:
    info = run(["dpkg-deb", "-I", str(deb)])
    for script in MAINTAINER_SCRIPTS:
        assert re.search(rf"^\s+\d+ bytes,\s+\d+ lines\s+\*\s+{script}\s", info, re.M), info
        packaged = control_dir / script
        assert packaged.read_bytes() == (DEB / script).read_bytes()
        assert os.access(packaged, os.X_OK)
    # The only conffile: specs are the admin's, never the package's.
    conffiles = (control_dir / "conffiles").read_text().split()
    assert conffiles == ["/etc/logrotate.d/uwsgi-supervisor"]
    assert sorted(p.name for p in control_dir.iterdir()) == sorted(
        ["conffiles", "control", "md5sums", *MAINTAINER_SCRIPTS]
    )
    md5sums = (control_dir / "md5sums").read_text().splitlines()
    summed = {line.split(maxsplit=1)[1] for line in md5sums}
    regular = {p.lstrip("/") for p, e in contents.items() if e.mode.startswith("-")}
    assert summed == regular


@slow
def test_packaged_supervisor_runs(extracted: Path, tmp_path: Path) -> None:
    require(shutil.which("unshare") is not None, "unshare not found (apt-get install util-linux)")
    cp = in_package_root(extracted, f"{extracted}/usr/bin/uwsgi-supervisor --version")
    assert cp.returncode == 0, cp.stderr
    assert cp.stdout.strip() == f"uwsgi-supervisor {__version__}"

    app = tmp_path / "app"
    app.mkdir()
    (app / "hello.py").write_text("def app(environ, start_response):\n    return [b'hi']\n")
    spec = tmp_path / "hello.yaml"
    spec.write_text(f'app:\n  module: "hello:app"\n  chdir: {app}\n')
    script = (f"{PREFIX}/bin/uwsgi --version && "
              f"{PREFIX}/bin/python -c 'import sys, yaml, sdnotify, watchdog.observers; "
              f"print(sys.prefix)' && "
              f"{extracted}/usr/bin/uwsgi-supervisor check {spec}")  # fmt: skip
    cp = in_package_root(extracted, script)
    assert cp.returncode == 0, cp.stdout + cp.stderr
    uwsgi_version, prefix, *check = cp.stdout.splitlines()
    assert re.fullmatch(r"2\.\d+\.\d+", uwsgi_version)
    assert prefix == PREFIX
    # The packaged supervisor finds the packaged uWSGI beside its own Python.
    assert f"{PREFIX}/bin/uwsgi" in "\n".join(check)


# --- the maintainer scripts, with a fake systemctl --------------------------------------------

PURGE_LINKS = {
    "multi-user.target.wants/uwsgi-supervisor@blog.service": f"/lib/systemd/system/{UNIT}",
    "sockets.target.wants/uwsgi-supervisor@blog.socket": f"/lib/systemd/system/{SOCKET_UNIT}",
    "multi-user.target.wants/uwsgi-supervisor@shop.service": f"/usr/lib/systemd/system/{UNIT}",
    "sockets.target.wants/uwsgi-supervisor@shop.socket": f"/usr/lib/systemd/system/{SOCKET_UNIT}",
    # The admin's own copies of the templates (the pip install path): not ours to remove.
    "multi-user.target.wants/uwsgi-supervisor@own.service": f"/etc/systemd/system/{UNIT}",
    "sockets.target.wants/uwsgi-supervisor@own.socket": f"/etc/systemd/system/{SOCKET_UNIT}",
    "multi-user.target.wants/other.service": "/lib/systemd/system/other.service",
}
# What the fake `systemctl list-units` prints while systemd runs: two instances running
# (one of them with its socket unit), one loaded but stopped.
LISTED = {
    "--state=active,activating,reloading": "uwsgi-supervisor@blog.service loaded active running x\n"
    "uwsgi-supervisor@shop.service loaded activating start x\n",
    "--all": "uwsgi-supervisor@blog.service loaded active running x\n"
    "uwsgi-supervisor@old.service loaded inactive dead x\n"
    "uwsgi-supervisor@blog.socket loaded active running x\n",
}
FAKE_SYSTEMCTL = r"""#!/bin/sh
echo "systemctl $*" >> "$LOG"
[ "$1" = list-units ] || exit 0
for arg in "$@"; do
    [ -f "$LISTED_DIR/$arg" ] && cat "$LISTED_DIR/$arg"
done
exit 0
"""
FAKE_INVOKE = '#!/bin/sh\necho "deb-systemd-invoke $*" >> "$LOG"\n'
SANDBOX = r"""
set -eu
script=$1 running=$2 log=$3 bin=$4; shift 4
mount -t tmpfs -o mode=0755 fake-run /run
[ "$running" = 0 ] || mkdir -p /run/systemd/system
mount -t tmpfs -o mode=0755 fake-units /etc/systemd/system
mkdir /etc/systemd/system/multi-user.target.wants /etc/systemd/system/sockets.target.wants
while read -r name target; do
    ln -s "$target" "/etc/systemd/system/$name"
done
PATH="$bin:$PATH" LOG="$log" LISTED_DIR="$bin/listed" sh "$script" "$@"
cd /etc/systemd/system && find . -type l | sort > "$log.links"
"""


def run_maintainer_script(
    tmp_path: Path, script: str, *args: str, systemd_running: bool
) -> tuple[list[str], list[str]]:
    """Run a maintainer script in a private mount namespace; its systemctl and
    deb-systemd-invoke calls, and the links left."""
    require(shutil.which("unshare") is not None, "unshare not found (apt-get install util-linux)")
    # Mounted over inside the namespace; never created on the host.
    units = Path("/etc/systemd/system")
    require(units.is_dir(), f"no {units} (apt-get install systemd)")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    log = tmp_path / "calls.log"
    log.write_text("")
    for name, text in (("systemctl", FAKE_SYSTEMCTL), ("deb-systemd-invoke", FAKE_INVOKE)):
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(0o755)
    (bin_dir / "listed").mkdir(exist_ok=True)
    for arg, listing in LISTED.items():
        (bin_dir / "listed" / arg).write_text(listing)
    links = "".join(f"{name} {target}\n" for name, target in PURGE_LINKS.items())
    argv = [*unshare_mount(), "sh", "-c", SANDBOX, "sh", str(DEB / script),
            "1" if systemd_running else "0", str(log), str(bin_dir), *args]  # fmt: skip
    cp = subprocess.run(argv, input=links, capture_output=True, text=True, timeout=30)
    assert cp.returncode == 0, f"{script} {' '.join(args)}: {cp.stdout}{cp.stderr}"
    calls = log.read_text().splitlines()
    for call in calls:
        if call.startswith("systemctl "):
            assert not FORBIDDEN_VERBS & set(call.split()), f"{script} {' '.join(args)}: {call}"
    left = [p.removeprefix("./") for p in Path(f"{log}.links").read_text().split()]
    return calls, left


LIST_RUNNING = (
    "systemctl list-units --plain --no-legend --state=active,activating,reloading"
    " uwsgi-supervisor@*.service"
)
LIST_ALL = (
    "systemctl list-units --all --plain --no-legend uwsgi-supervisor@*.service"
    " uwsgi-supervisor@*.socket"
)


@pytest.mark.parametrize(
    "script, args, running, expected",
    [
        # First install: nothing is enabled, started or restarted.
        ("postinst", ("configure", ""), True, ["systemctl daemon-reload"]),
        # Upgrade: the running instances restart on the new version; the stopped one stays
        # stopped, and the socket units are left alone (they hold the sockets).
        ("postinst", ("configure", "0.0.9"), True, [
            "systemctl daemon-reload", LIST_RUNNING,
            "deb-systemd-invoke restart uwsgi-supervisor@blog.service"
            " uwsgi-supervisor@shop.service",
        ]),
        ("postinst", ("configure", ""), False, []),
        ("postinst", ("configure", "0.0.9"), False, []),
        ("prerm", ("upgrade", __version__), True, []),
        ("prerm", ("remove",), True, [
            LIST_ALL,
            "deb-systemd-invoke stop uwsgi-supervisor@blog.service uwsgi-supervisor@old.service"
            " uwsgi-supervisor@blog.socket",
        ]),
        ("prerm", ("remove",), False, []),
        ("postrm", ("upgrade", __version__), True, []),
        ("postrm", ("remove",), True, ["systemctl daemon-reload"]),
        ("postrm", ("remove",), False, []),
        ("postrm", ("purge",), True, ["systemctl daemon-reload"]),
    ],
)  # fmt: skip
def test_maintainer_script_calls(
    tmp_path: Path, script: str, args: tuple[str, ...], running: bool, expected: list[str]
) -> None:
    calls, left = run_maintainer_script(tmp_path, script, *args, systemd_running=running)
    assert calls == expected
    if args[0] != "purge":
        assert sorted(left) == sorted(PURGE_LINKS), "only a purge removes enablement links"
    invoked = [c.split()[1] for c in calls if c.startswith("deb-systemd-invoke ")]
    allowed = {"postinst": ["restart"], "prerm": ["stop"]}.get(script, [])
    assert set(invoked) <= set(allowed), (script, calls)
    if "restart" in invoked:
        assert args[1], "a first install restarts nothing"
        assert not any(c.endswith(".socket") for c in calls if "restart" in c.split())


def test_purge_drops_only_the_packaged_templates_instance_links(tmp_path: Path) -> None:
    _, left = run_maintainer_script(tmp_path, "postrm", "purge", systemd_running=False)
    assert sorted(left) == [
        "multi-user.target.wants/other.service",
        "multi-user.target.wants/uwsgi-supervisor@own.service",
        "sockets.target.wants/uwsgi-supervisor@own.socket",
    ]


# --- the .deb under a real systemd -------------------------------------------------------------

HELLO = "def app(environ, start_response):\n" \
        "    start_response('200 OK', [('Content-Type', 'text/plain')])\n" \
        "    return [b'packaged hello\\n']\n"  # fmt: skip


def get(port: int) -> str:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", "/")
        return conn.getresponse().read().decode()
    finally:
        conn.close()


def instances(sd: Systemd) -> str:
    listing = sd.systemctl("list-units", "--all", "--plain", "--no-legend", "uwsgi-supervisor@*")
    return listing.stdout


# This host is a container image whose /usr/sbin/policy-rc.d (exit 101) forbids maintainer
# scripts to start, stop or restart services; deb-systemd-invoke obeys it. A server has none:
# it is removed inside the namespace (the overlay), never on the host.
NO_POLICY = ["rm", "-f", "/usr/sbin/policy-rc.d"]


@slow
@pytest.mark.systemd
def test_deb_installs_serves_upgrades_and_removes_under_systemd(deb: Path) -> None:
    port = free_port()
    spec = (f'app:\n  module: "hello:app"\n  chdir: /srv/pkg\nuwsgi:\n'
            f"  socket: /run/uwsgi-supervisor/pkg.sock\n  http: 127.0.0.1:{port}\n")  # fmt: skip
    files = {"/srv/pkg/hello.py": HELLO}
    with boot_or_skip(files=files) as sd:
        sd.run(NO_POLICY, check=True)
        sd.run(["dpkg", "-i", str(deb)], check=True, timeout=120)
        assert instances(sd).strip() == "", "installing started something"
        # This test manager reads units from one directory only: put the packaged units there.
        for name in (UNIT, SOCKET_UNIT):
            sd.write_unit(name, sd.read_file(f"/lib/systemd/system/{name}"))
        sd.write_file("/etc/uwsgi-supervisor/pkg.yaml", spec)
        # The socket unit holds the HTTP listener too: the packaged CLI renders its drop-in.
        dropin = sd.run(["/usr/bin/uwsgi-supervisor", "render", "socket",
                         "/etc/uwsgi-supervisor/pkg.yaml"], check=True).stdout  # fmt: skip
        sd.write_unit("uwsgi-supervisor@pkg.socket.d/override.conf", dropin)
        sd.daemon_reload()
        unit, socket = "uwsgi-supervisor@pkg.service", "uwsgi-supervisor@pkg.socket"
        sd.start(unit)
        assert get(port) == "packaged hello\n"
        main_pid = sd.show(unit, "MainPID")["MainPID"]
        cmdline = sd.run(["cat", f"/proc/{main_pid}/cmdline"], check=True).stdout.split("\0")
        assert cmdline[:2] == [f"{PREFIX}/bin/python", "/usr/bin/uwsgi-supervisor"], cmdline
        listening = sd.show(socket, "ActiveState", "ActiveEnterTimestampMonotonic")
        assert listening["ActiveState"] == "active", listening

        # The upgrade path (same version reinstalled): the running instance is restarted,
        # its socket unit is not.
        sd.run(["dpkg", "-i", str(deb)], check=True, timeout=120)
        state = sd.show(unit, "ActiveState", "MainPID")
        assert state["ActiveState"] == "active" and state["MainPID"] not in ("0", main_pid), state
        assert sd.show(socket, "ActiveState", "ActiveEnterTimestampMonotonic") == listening
        assert get(port) == "packaged hello\n"

        sd.run(["dpkg", "-r", "uwsgi-supervisor"], check=True, timeout=120)
        assert sd.show(unit, "ActiveState")["ActiveState"] in ("inactive", "failed")
        assert sd.show(unit, "Result")["Result"] == "success"
        assert sd.show(socket, "ActiveState")["ActiveState"] == "inactive"
        leftover = sd.run(["sh", "-c", f"ls -A {PREFIX} /etc/uwsgi-supervisor 2>&1"]).stdout
        assert "pkg.yaml" in leftover and "No such file" in leftover, leftover


# --- the RPM spec --------------------------------------------------------------------------------


def spec_text() -> str:
    return RPM_SPEC.read_text()


def test_rpm_spec_version_is_the_packages() -> None:
    versions = re.findall(r"^Version:\s*(\S+)\s*$", spec_text(), re.M)
    assert versions == [__version__], f"{RPM_SPEC}: Version {versions}, supervisor {__version__}"


def test_rpm_spec_ships_the_same_units_and_restarts_running_instances() -> None:
    text = spec_text()
    files = text.split("\n%files\n", 1)[1].split("\n%changelog", 1)[0]
    for unit in (UNIT, SOCKET_UNIT):
        assert f"%{{_unitdir}}/{unit}" in files.split(), unit
        assert f"units/{unit} %{{buildroot}}%{{_unitdir}}/{unit}" in text, unit
        assert (REPO / "units" / unit).exists()
    both = f"{re.escape(UNIT)} {re.escape(SOCKET_UNIT)}"
    for macro in ("%systemd_post", "%systemd_preun", "%systemd_postun"):
        assert re.search(rf"^{macro} {both}$", text, re.M), macro
    # A template is not a unit systemd can mark for a restart: the running instances are named.
    postun = text.split("\n%postun\n", 1)[1].split("\n%files\n", 1)[0]
    assert re.search(r"^%systemd_postun_with_restart \$running$", postun, re.M), postun
    assert "--state=active,activating,reloading 'uwsgi-supervisor@*.service'" in postun.replace(
        "\\\n        ", ""
    ), postun
    assert "socket" not in postun.split("%systemd_postun_with_restart", 1)[1], "sockets stay"
    preun = text.split("\n%preun\n", 1)[1].split("\n%postun\n", 1)[0]
    assert "systemctl stop 'uwsgi-supervisor@*.service' 'uwsgi-supervisor@*.socket'" in preun
    assert re.search(r"^Requires:\s+python3 >= 3\.9$", text, re.M)
    for build_requires in ("gcc", "python3-devel"):
        assert re.search(rf"^BuildRequires:\s+{build_requires}\b", text, re.M), build_requires


def test_deb_and_rpm_describe_the_same_layout() -> None:
    build = (DEB / "build").read_text()
    text = spec_text()
    assert f"PREFIX={PREFIX}" in build and f"%global venv {PREFIX}" in text
    for unit in (UNIT, SOCKET_UNIT):
        assert f'"$repo/units/{unit}"' in build and f"units/{unit}" in text, unit
    snippet = "etc/logrotate.d/uwsgi-supervisor"
    assert f'"$repo/{snippet}" "$root/{snippet}"' in build
    assert f"{snippet} %{{buildroot}}%{{_sysconfdir}}/logrotate.d/uwsgi-supervisor" in text
    assert "%config(noreplace) %{_sysconfdir}/logrotate.d/uwsgi-supervisor" in text
    assert '"$root/var/log/uwsgi-supervisor"' in build
    assert "%dir %attr(0755,root,root) %{_localstatedir}/log/uwsgi-supervisor" in text
    for doc in (
        "README.md",
        "etc/example.yaml",
        "etc/nginx/*.conf",
        "units/uwsgi-supervisor-example.service",
    ):
        assert doc in build.replace('"$repo"/', "").replace('"$repo/', ""), doc
        assert doc in text, doc  # fmt: skip
