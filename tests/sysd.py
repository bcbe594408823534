"""Boot a real, throwaway systemd for tests: PID 1 of fresh namespaces on an overlay root.

Usage::

    from sysd import boot_or_skip

    def test_something(tmp_path):
        with boot_or_skip(
            units={"demo.service": UNIT_TEXT},                 # into the manager's only unit dir
            dropins={"demo.service.d/test.conf": DROPIN_TEXT},  # same dir, "<unit>.d/<name>.conf"
            files={"/etc/demo.yaml": "a: 1\\n"},                # into the overlay only, before boot
        ) as sd:
            sd.start("demo.service")                    # SystemdError (with journal) on failure
            sd.systemctl("reload", "demo.service")      # -> CompletedProcess, never raises on rc
            sd.show("demo.service", "ActiveState", "MainPID", "StatusText", "NRestarts")  # -> dict
            sd.wait_for_state("demo.service", "active", timeout=10)
            sd.wait_for_journal("demo.service", "listening", timeout=10)
            sd.journal("demo.service")                  # -> str (journald runs inside)
            sd.run(["curl", "-s", "http://127.0.0.1:8000/"])   # any command, inside the namespaces
            sd.pids_in_unit("demo.service")             # -> namespace pids in the unit's cgroup
            sd.kill("demo.service", "SIGSTOP")          # systemctl kill --kill-who=main
            sd.write_file("/etc/demo.yaml", "a: 2\\n")  # into the overlay, after boot
            sd.daemon_reload()

``booted_systemd(...)`` is the same context manager but raises ``SystemdUnavailable`` when this
machine cannot boot one; ``boot_or_skip(...)`` turns that into a pytest skip, or a failure when
the environment has ``CI=true``. Once systemd answered, failures raise ``SystemdError`` (never
skipped), with the unit's status, its journal and the harness's logs in the message.

For the product: ``units=shipped_template()`` is ``units/uwsgi-supervisor@.service`` with
``/usr/bin/uwsgi-supervisor`` pointed at this checkout's venv (``with_venv_binary(text)`` does
that to any unit text), and the socket unit it requires, ``units/uwsgi-supervisor@.socket``.
The checkout and the venv's real interpreter (a pyenv Python under ``/root``, say) are made
reachable for every user inside, so ``User=www-data`` can run them.

How it is built (and why it is safe for the host):

* ``sh`` moves itself into a fresh cgroup2 directory of ours (``<cgroup2 mount>/sysd-harness-*``:
  ``/sys/fs/cgroup/unified`` on hybrid hosts, ``/sys/fs/cgroup`` on unified ones), then runs
  ``unshare --pid --fork --kill-child --mount --propagation private --uts --ipc --cgroup``, so
  that directory becomes the root of the new cgroup namespace and systemd gets a writable cgroup2
  tree of its own (mounted fresh at ``/sys/fs/cgroup`` inside). No cgroup v1 controllers there:
  ``MemoryMax=`` and friends are accepted but not enforced.
* ``SETUP_SCRIPT`` (PID 1 of the new pid namespace) mounts an overlay with the host ``/`` as the
  read-only lower layer and a tmpfs as upper, mounts a fresh ``/proc`` (``/proc/sys`` read-only),
  a read-only ``/sys``, a fresh tmpfs ``/run``, a private ``/dev`` (a few device nodes bound in,
  ``/dev/console`` bound to a log file of ours), unpacks the test's files into it,
  ``pivot_root``\\ s, checks that ``/`` is the overlay and ``/run`` a tmpfs, and execs
  ``/lib/systemd/systemd --system`` with ``SYSTEMD_UNIT_PATH`` naming one directory under the
  fresh ``/run`` and both generator paths naming an empty one. The manager never sees the host's
  unit directories (it would run ``systemd-tmpfiles-setup.service`` and empty the host's
  ``/tmp``); after boot the harness checks ``UnitPath`` again. Host files stay untouched: every
  write inside lands in the overlay's tmpfs.
* Every boot creates a canary file in the host's ``/tmp`` and raises ``HostDamaged`` if it is gone
  after boot or after teardown.
* Teardown: ``systemctl exit`` (services are stopped the normal way), a bounded wait, then
  ``cgroup.kill`` on our cgroup and SIGKILL to our ``unshare`` (by PID) if needed; then the
  cgroup tree and the work directory (``/tmp/sysd-harness-*``) are removed. If the test process
  itself dies, ``setpriv --pdeathsig KILL`` takes ``unshare`` and so the namespace along (boot
  from the thread that will tear down), and the next boot removes the empty cgroup and work
  directory left behind by any harness whose test process is gone.

Commands run inside with ``nsenter -t PID -m -p -u -i -C -r -w`` and a clean environment. The
network namespace is the host's: bind loopback or unix sockets. The host ``/`` (so this checkout
and its venv, and pytest's ``tmp_path``) is visible inside through the overlay's lower layer.
"""

from __future__ import annotations

import contextlib
import grp
import os
import pwd
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional, TypeVar, Union

SYSTEMD = "/lib/systemd/systemd"
HOST_UNIT_DIR = Path("/usr/lib/systemd/system")
REPO = Path(__file__).resolve().parents[1]
VENV_BIN = REPO / ".venv" / "bin"
INSTALLED_BIN = "/usr/bin/uwsgi-supervisor"
TEMPLATE_UNIT = REPO / "units" / "uwsgi-supervisor@.service"
TEMPLATE_SOCKET = REPO / "units" / "uwsgi-supervisor@.socket"

# Paths inside the namespace (on its fresh /run tmpfs).
PREFIX = "sysd-harness-"  # of our cgroups and of our work dirs in the host's /tmp
HARNESS_RUN = "/run/sysd-harness"
UNIT_DIR = f"{HARNESS_RUN}/units"
EMPTY_DIR = f"{HARNESS_RUN}/empty"

INSIDE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
NSENTER = ("nsenter", "-m", "-p", "-u", "-i", "-C", "-r", "-w")
# Unit directories the manager must never search (see module docstring).
FORBIDDEN_UNIT_DIRS = (
    "/etc/systemd/system",
    "/lib/systemd/system",
    "/usr/lib/systemd/system",
    "/usr/local/lib/systemd/system",
)

T = TypeVar("T")
Content = Union[str, bytes]


class SystemdUnavailable(Exception):
    """This machine cannot boot a test systemd (not root, no overlayfs, no cgroup2, ...)."""


class SystemdError(AssertionError):
    """A command or wait against the booted systemd failed; the message carries diagnostics."""


class HostDamaged(AssertionError):
    """The host canary vanished: something inside touched the host's /tmp. Never skipped."""


@dataclass(frozen=True)
class File:
    """A file to place in the overlay, with its mode, owner and group (names or numbers)."""

    content: Content
    mode: int = 0o644
    owner: Union[str, int, None] = None
    group: Union[str, int, None] = None


# --- units every boot gets -------------------------------------------------------------------

_STUB_TARGETS = (
    "basic.target",
    "sockets.target",
    "timers.target",
    "paths.target",
    "slices.target",
    "local-fs.target",
    "swap.target",
    "network.target",
    "network-online.target",
    "nss-lookup.target",
)
# Shutdown machinery so that `systemctl exit` stops services the normal way.
_COPIED_UNITS = (
    "shutdown.target",
    "umount.target",
    "final.target",
    "exit.target",
    "systemd-exit.service",
    "systemd-journald.socket",
    "systemd-journald-dev-log.socket",
)

# Debian's unit also wants the audit socket and a sandbox we do not need; keep it minimal.
_JOURNALD_SERVICE = """\
[Unit]
Description=Journal Service (test harness)
DefaultDependencies=no
Requires=systemd-journald.socket
After=systemd-journald.socket systemd-journald-dev-log.socket
Before=sysinit.target
IgnoreOnIsolate=yes

[Service]
Type=notify
ExecStart=/lib/systemd/systemd-journald
Sockets=systemd-journald.socket systemd-journald-dev-log.socket
FileDescriptorStoreMax=4224
Restart=always
RestartSec=0
RuntimeDirectory=systemd/journal
RuntimeDirectoryPreserve=yes
StandardOutput=null
"""

_SYSINIT_TARGET = """\
[Unit]
Description=System Initialization (test harness stub)
Wants=systemd-journald.service systemd-journald.socket systemd-journald-dev-log.socket
"""

_MULTI_USER_TARGET = """\
[Unit]
Description=Multi-User System (test harness stub)
Requires=basic.target
After=basic.target
AllowIsolate=yes
"""

_BASIC_TARGET = """\
[Unit]
Description=Basic System (test harness stub)
Requires=sysinit.target
After=sysinit.target sockets.target
"""

_JOURNALD_CONF = """\
[Journal]
Storage=volatile
RateLimitBurst=0
ForwardToConsole=no
ForwardToSyslog=no
ForwardToWall=no
"""


def _base_units() -> dict[str, str]:
    units = {name: f"[Unit]\nDescription={name} (test harness stub)\n" for name in _STUB_TARGETS}
    units["basic.target"] = _BASIC_TARGET
    units["sysinit.target"] = _SYSINIT_TARGET
    units["multi-user.target"] = _MULTI_USER_TARGET
    units["default.target"] = _MULTI_USER_TARGET
    for name in _COPIED_UNITS:
        units[name] = (HOST_UNIT_DIR / name).read_text()
    units["systemd-journald.service"] = _JOURNALD_SERVICE
    return units


# --- the script that becomes PID 1 of the new pid namespace, then execs systemd ---------------

SETUP_SCRIPT = r"""
set -eu
scratch=$1 stage=$2 console=$3
r=$scratch/root

# Throwaway root: host / read-only below, tmpfs above.
mount -t tmpfs -o mode=0700 sysd-scratch "$scratch"
mkdir "$scratch/upper" "$scratch/work" "$r"
mount -t overlay sysd-root -o "lowerdir=/,upperdir=$scratch/upper,workdir=$scratch/work" "$r"

mount -t proc -o nosuid,nodev,noexec proc "$r/proc"
for p in sys sysrq-trigger; do
    [ -e "$r/proc/$p" ] || continue
    mount --bind "$r/proc/$p" "$r/proc/$p"
    mount -o remount,bind,ro "$r/proc/$p"
done
mount -t sysfs -o ro,nosuid,nodev,noexec sysfs "$r/sys"
# Root of this cgroup namespace, i.e. the harness's own cgroup2 directory.
mount -t cgroup2 -o nosuid,nodev,noexec cgroup2 "$r/sys/fs/cgroup"
mount -t tmpfs -o mode=0755,nosuid,nodev sysd-run "$r/run"

mount -t tmpfs -o mode=0755,nosuid sysd-dev "$r/dev"
for n in null zero full random urandom tty; do
    : > "$r/dev/$n"
    mount --bind "/dev/$n" "$r/dev/$n"
done
mkdir -m 0755 "$r/dev/pts"
mkdir -m 1777 "$r/dev/shm"
mount -t devpts -o newinstance,ptmxmode=0666,mode=0620,nosuid,noexec devpts "$r/dev/pts"
mount -t tmpfs -o mode=1777,nosuid,nodev sysd-shm "$r/dev/shm"
ln -s pts/ptmx "$r/dev/ptmx"
ln -s /proc/self/fd "$r/dev/fd"
ln -s /proc/self/fd/0 "$r/dev/stdin"
ln -s /proc/self/fd/1 "$r/dev/stdout"
ln -s /proc/self/fd/2 "$r/dev/stderr"
: > "$r/dev/console"
mount --bind "$console" "$r/dev/console"

# The test's files (units under /run, config under /etc, ...); existing dirs keep their modes.
tar -C "$stage" -cf - . | tar -C "$r" -xpf - --numeric-owner --no-overwrite-dir

cd "$r"
mkdir .sysd-oldroot
pivot_root . .sysd-oldroot
cd /
umount -l /.sysd-oldroot
rmdir /.sysd-oldroot

# Refuse to boot anywhere but on the throwaway root.
[ "$(stat -f -c %T /)" = overlayfs ] || { echo "sysd-setup: / is not the overlay" >&2; exit 97; }
[ "$(stat -f -c %T /run)" = tmpfs ] || { echo "sysd-setup: /run is not a tmpfs" >&2; exit 97; }
[ "$(stat -f -c %T /sys/fs/cgroup)" = cgroup2fs ] || { echo "sysd-setup: no cgroup2" >&2; exit 97; }

exec env -i container=sysd-harness PATH="$INSIDE_PATH" LANG=C.UTF-8 \
    SYSTEMD_UNIT_PATH="$UNIT_DIR" \
    SYSTEMD_GENERATOR_PATH="$EMPTY_DIR" \
    SYSTEMD_ENVIRONMENT_GENERATOR_PATH="$EMPTY_DIR" \
    /lib/systemd/systemd --system --log-level=info --show-status=no
"""


# --- host-side helpers -----------------------------------------------------------------------


def _cgroup2_mount() -> Path:
    """Where the host mounts cgroup2 (``/sys/fs/cgroup/unified`` on hybrid hosts)."""
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            sep = fields.index("-")
            if fields[sep + 1] == "cgroup2":
                return Path(fields[4])
    raise SystemdUnavailable("no cgroup2 hierarchy is mounted on the host")


def _own_cgroup2_path() -> str:
    with open("/proc/self/cgroup") as f:
        for line in f:
            if line.startswith("0::"):
                return line[3:].strip()
    return "/"


def preflight() -> None:
    """Raise SystemdUnavailable with the reason if this machine cannot boot a test systemd."""
    if os.geteuid() != 0:
        raise SystemdUnavailable("needs root (mounts, namespaces, cgroups)")
    for tool in ("unshare", "nsenter", "setpriv", "pivot_root", "tar", "systemctl", "journalctl"):
        if shutil.which(tool, path=os.environ.get("PATH", "") + ":/usr/sbin:/sbin") is None:
            raise SystemdUnavailable(f"{tool} not found")
    if not os.access(SYSTEMD, os.X_OK):
        raise SystemdUnavailable(f"{SYSTEMD} not found (install the systemd package)")
    for name in _COPIED_UNITS:
        if not (HOST_UNIT_DIR / name).is_file():
            raise SystemdUnavailable(f"{HOST_UNIT_DIR / name} not found")
    with open("/proc/filesystems") as f:
        if "overlay" not in f.read().split():
            raise SystemdUnavailable("the kernel has no overlayfs")
    _cgroup2_mount()


def _uid(owner: Union[str, int, None]) -> int:
    if owner is None:
        return 0
    return owner if isinstance(owner, int) else pwd.getpwnam(owner).pw_uid


def _gid(group: Union[str, int, None], owner: Union[str, int, None]) -> int:
    if group is None:
        return 0 if owner is None else pwd.getpwuid(_uid(owner)).pw_gid
    return group if isinstance(group, int) else grp.getgrnam(group).gr_gid


def _stage_files(stage: Path, files: Mapping[str, Union[Content, File]]) -> None:
    for path, spec in files.items():
        if not path.startswith("/") or ".." in Path(path).parts:
            raise ValueError(f"files: {path!r} must be an absolute path without '..'")
        f = spec if isinstance(spec, File) else File(spec)
        target = stage / path.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        data = f.content.encode() if isinstance(f.content, str) else f.content
        target.write_bytes(data)
        os.chown(target, _uid(f.owner), _gid(f.group, f.owner))
        os.chmod(target, f.mode)


class _Canary:
    """A file in the host's /tmp that must survive every boot and teardown."""

    def __init__(self, name: str) -> None:
        self.path = Path(tempfile.gettempdir()) / f"canary-{name}"

    def create(self) -> _Canary:
        self.path.write_text("if this file vanished, a test systemd wiped the host's /tmp\n")
        return self

    def check(self, when: str) -> None:
        if not self.path.exists():
            raise HostDamaged(
                f"host canary {self.path} vanished {when}: the host's /tmp was touched"
            )

    def remove(self) -> None:
        self.path.unlink(missing_ok=True)


# --- the booted manager ----------------------------------------------------------------------


class Systemd:
    """A running test systemd; see the module docstring for the API tour."""

    def __init__(self, proc: subprocess.Popen[bytes], cgroup: Path, workdir: Path) -> None:
        self.proc = proc  # our `unshare`
        self.cgroup = cgroup  # host path of the namespace's cgroup root
        self.workdir = workdir
        self.console_log = workdir / "console.log"  # systemd's /dev/console
        self.setup_log = workdir / "setup.log"  # stdout/stderr of sh/unshare/setup script
        self.pid = 0  # host pid of the namespace's PID 1

    # running commands inside

    def nsenter_cmd(
        self, argv: Sequence[str], env: Optional[Mapping[str, str]] = None
    ) -> list[str]:
        """The host argv that runs ``argv`` inside the namespaces with a clean environment."""
        environ = {
            "PATH": INSIDE_PATH,
            "LANG": "C.UTF-8",
            "SYSTEMD_PAGER": "cat",
            "SYSTEMD_COLORS": "0",
            "TERM": "dumb",
            "HOME": "/root",
            **(env or {}),
        }
        return [
            NSENTER[0], "-t", str(self.pid), *NSENTER[1:], "--",
            "env", "-i", *(f"{k}={v}" for k, v in environ.items()), *argv,
        ]  # fmt: skip

    def run(
        self,
        argv: Sequence[str],
        *,
        input: Optional[Content] = None,
        timeout: float = 30,
        check: bool = False,
        env: Optional[Mapping[str, str]] = None,
    ) -> subprocess.CompletedProcess[str]:
        """Run ``argv`` inside; output captured as text. ``check``: SystemdError on rc != 0."""
        data = input.encode() if isinstance(input, str) else input
        cmd = self.nsenter_cmd(argv, env)
        try:
            raw = subprocess.run(
                cmd, input=data, capture_output=True, timeout=timeout, check=False,
                stdin=subprocess.DEVNULL if data is None else None,
            )  # fmt: skip
        except subprocess.TimeoutExpired as e:
            raise SystemdError(f"{_fmt(argv)} timed out after {timeout}s\n{self.diagnose()}") from e
        cp = subprocess.CompletedProcess(
            cmd,
            raw.returncode,
            raw.stdout.decode(errors="replace"),
            raw.stderr.decode(errors="replace"),
        )
        if check and cp.returncode != 0:
            raise SystemdError(
                f"{_fmt(argv)} exited {cp.returncode}\n{_out(cp)}\n{self.diagnose()}"
            )
        return cp

    def systemctl(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        """``systemctl ARGS`` inside; returns the CompletedProcess whatever the exit code."""
        return self.run(["systemctl", "--no-pager", "--no-ask-password", *args], timeout=timeout)

    def _checked(
        self, *args: str, unit: Optional[str] = None, timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        """``systemctl ARGS``; SystemdError with the unit's status and journal if it fails."""
        cp = self.systemctl(*args, timeout=timeout)
        if cp.returncode != 0:
            raise SystemdError(
                f"systemctl {_fmt(args)} exited {cp.returncode}\n{_out(cp)}\n{self.diagnose(unit)}"
            )
        return cp

    def _job(self, verb: str, unit: str, timeout: float) -> subprocess.CompletedProcess[str]:
        return self._checked(verb, unit, unit=unit, timeout=timeout)

    def start(self, unit: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        """``systemctl start``; raises SystemdError with status and journal if it fails."""
        return self._job("start", unit, timeout)

    def stop(self, unit: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        """``systemctl stop``; raises SystemdError with status and journal if it fails."""
        return self._job("stop", unit, timeout)

    def restart(self, unit: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        """``systemctl restart``; raises SystemdError with status and journal if it fails."""
        return self._job("restart", unit, timeout)

    def reload(self, unit: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        """``systemctl reload``; raises SystemdError with status and journal if it fails."""
        return self._job("reload", unit, timeout)

    def daemon_reload(self) -> None:
        """``systemctl daemon-reload``, e.g. after ``write_unit``."""
        self._checked("daemon-reload")

    def kill(self, unit: str, sig: str = "SIGTERM", whom: str = "main") -> None:
        """Send ``sig`` to the unit's processes (``whom``: main, control or all)."""
        self._checked("kill", f"--signal={sig}", f"--kill-who={whom}", unit, unit=unit)

    def show(self, unit: Optional[str], *props: str) -> dict[str, str]:
        """``systemctl show`` as a dict (``unit=None``: the manager's own properties).

        Named properties are always present ('' when unset).
        """
        args = [*(f"--property={p}" for p in props), *(["--", unit] if unit else [])]
        cp = self.systemctl("show", *args)
        if cp.returncode != 0:
            raise SystemdError(f"systemctl show {unit or ''} failed\n{_out(cp)}")
        result = dict.fromkeys(props, "")
        for line in cp.stdout.splitlines():
            key, sep, value = line.partition("=")
            if sep:
                result[key] = value
        return result

    def status(self, unit: str) -> str:
        """``systemctl status`` text (for messages; its exit code says little)."""
        cp = self.systemctl("status", "--lines=0", "--full", unit)
        return cp.stdout + cp.stderr

    def journal(self, unit: Optional[str] = None, *, output: str = "short-monotonic") -> str:
        """The journal inside (of one unit, with systemd's own messages about it), synced first."""
        self.run(["journalctl", "--sync"], timeout=10)
        args = ["journalctl", "--no-pager", "--quiet", f"--output={output}"]
        if unit is not None:
            args.append(f"--unit={unit}")
        return self.run(args, timeout=20).stdout

    # files inside

    def write_file(
        self, path: str, content: Content, mode: int = 0o644, owner: Union[str, int, None] = None
    ) -> None:
        """Write a file inside (into the overlay), creating parent directories."""
        script = 'umask 022; mkdir -p -- "$(dirname -- "$1")" && cat > "$1" && chmod "$2" "$1"'
        argv = ["sh", "-c", script, "sh", path, format(mode, "o")]
        self.run(argv, input=content, check=True)
        if owner is not None:
            self.run(["chown", str(owner), path], check=True)

    def write_unit(self, name: str, text: str) -> None:
        """Add or replace a unit (or ``<unit>.d/<x>.conf`` drop-in); call ``daemon_reload`` next."""
        self.write_file(f"{UNIT_DIR}/{name}", text)

    def make_reachable(self, path: str) -> None:
        """Let every user inside traverse to ``path`` (o+x on its ancestors, in the overlay only).

        Boot does it for this checkout and its venv's interpreter (a pyenv Python under
        ``/root`` that a ``User=www-data`` service has to run, say); call it for other paths.
        """
        script = 'p=$1; while [ "$p" != / ]; do p=$(dirname -- "$p"); chmod o+x -- "$p"; done'
        self.run(["sh", "-c", script, "sh", path], check=True)

    def read_file(self, path: str) -> str:
        """A file's text inside the namespace."""
        return self.run(["cat", "--", path], check=True).stdout

    # processes

    def host_pids_in_unit(self, unit: str) -> list[int]:
        """Host pids of every process in the unit's cgroup subtree."""
        cg = self.show(unit, "ControlGroup")["ControlGroup"]
        if not cg:
            return []
        root = self.cgroup / cg.lstrip("/")
        pids: list[int] = []
        for dirpath, _dirs, _files in os.walk(root):
            with contextlib.suppress(FileNotFoundError):
                pids += [int(p) for p in Path(dirpath, "cgroup.procs").read_text().split()]
        return sorted(pids)

    def pids_in_unit(self, unit: str) -> list[int]:
        """Namespace pids (as ``MainPID`` shows them) of every process in the unit's cgroup."""
        ns = (_ns_pid(p) for p in self.host_pids_in_unit(unit))
        return sorted(p for p in ns if p is not None)

    # waiting

    def wait_until(
        self,
        what: str,
        probe: Callable[[], Optional[T]],
        timeout: float = 10,
        interval: float = 0.05,
        unit: Optional[str] = None,
    ) -> T:
        """Poll ``probe`` until it returns something truthy; SystemdError names ``what`` if not."""
        deadline = time.monotonic() + timeout
        while True:
            value = probe()
            if value:
                return value
            if time.monotonic() >= deadline:
                raise SystemdError(
                    f"timed out after {timeout}s waiting for {what}\n{self.diagnose(unit)}"
                )
            time.sleep(interval)

    def wait_for_state(
        self, unit: str, active_state: str, timeout: float = 10, **props: str
    ) -> dict[str, str]:
        """Wait until ``ActiveState`` and any other ``Prop=value`` given match; returns them."""
        wanted = {"ActiveState": active_state, **props}

        def probe() -> Optional[dict[str, str]]:
            shown = self.show(unit, "ActiveState", "SubState", "MainPID", "NRestarts",
                              "Result", "StatusText", *props)  # fmt: skip
            return shown if all(shown[k] == v for k, v in wanted.items()) else None

        return self.wait_until(f"{unit} with {wanted}", probe, timeout, 0.05, unit)

    def wait_for_journal(self, unit: Optional[str], needle: str, timeout: float = 10) -> str:
        """Wait until ``needle`` appears in the (unit's) journal; returns the journal."""

        def probe() -> Optional[str]:
            text = self.journal(unit)
            return text if needle in text else None

        return self.wait_until(f"{needle!r} in the journal of {unit}", probe, timeout, 0.2, unit)

    # diagnostics

    def diagnose(self, unit: Optional[str] = None) -> str:
        """Everything useful when a test fails: unit status, journal tail, console and setup log."""
        parts = []
        if self.proc.poll() is not None:
            parts.append(f"!! the namespace is gone (unshare exited {self.proc.returncode})")
        else:
            with contextlib.suppress(Exception):
                if unit is not None:
                    parts.append(f"--- systemctl status {unit}\n{self.status(unit)}")
                tail = self.journal(unit).splitlines()[-80:]
                parts.append(f"--- journal {unit or '(all)'} (last 80 lines)\n" + "\n".join(tail))
        for label, path in (("console", self.console_log), ("setup", self.setup_log)):
            with contextlib.suppress(OSError):
                text = path.read_text(errors="replace").strip()
                if text:
                    parts.append(
                        f"--- {label} log (last 40 lines)\n" + "\n".join(text.splitlines()[-40:])
                    )
        return "\n".join(parts)

    # lifecycle (used by booted_systemd)

    def _find_pid1(self, deadline: float) -> int:
        children = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children")
        while time.monotonic() < deadline and self.proc.poll() is None:
            with contextlib.suppress(OSError):
                kids = children.read_text().split()
                if kids:
                    return int(kids[0])
            time.sleep(0.01)
        raise SystemdUnavailable(f"the namespace did not start\n{self.diagnose()}")

    def _wait_booted(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        self.pid = self._find_pid1(deadline)
        state = ""  # is-system-running; once systemd answers, failures are no longer "this host"
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                error = SystemdError if state else SystemdUnavailable
                raise error(f"systemd did not boot\n{self.diagnose()}")
            comm = ""
            with contextlib.suppress(OSError):
                comm = Path(f"/proc/{self.pid}/comm").read_text().strip()
            if comm == "systemd":
                state = self.systemctl("is-system-running", timeout=5).stdout.strip()
                if state in ("running", "degraded"):
                    break
            time.sleep(0.02)
        else:
            error = SystemdError if state else SystemdUnavailable
            raise error(f"systemd did not boot in {timeout}s (state {state!r})\n{self.diagnose()}")
        if state != "running":
            failed = self.systemctl("list-units", "--failed", "--plain").stdout
            raise SystemdError(f"boot ended {state!r}\n{failed}\n{self.diagnose()}")
        paths = self.show(None, "UnitPath")["UnitPath"].split()
        bad = [p for p in paths if p.rstrip("/") in FORBIDDEN_UNIT_DIRS]
        if bad:
            raise SystemdError(f"the test manager searches host unit dirs {bad}: stop everything")

    def _teardown(self, timeout: float) -> list[str]:
        """Stop the manager, kill what is left of ours, remove the cgroup; returns problems."""
        problems: list[str] = []
        if self.proc.poll() is None and self.pid:
            cp = self.systemctl("exit", timeout=10)
            if cp.returncode != 0 and self.proc.poll() is None:
                problems.append(f"systemctl exit: {_out(cp)}")
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                problems.append(f"systemd did not exit within {timeout}s; killed")
        if self.proc.poll() is None:
            self._kill_cgroup()
            self.proc.kill()  # our unshare; --kill-child takes PID 1 and its namespace along
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                problems.append(f"unshare pid {self.proc.pid} would not die")
        problems += self._remove_cgroup()
        return problems

    def _kill_cgroup(self) -> None:
        kill = self.cgroup / "cgroup.kill"
        if kill.exists():
            with contextlib.suppress(OSError):
                kill.write_text("1")

    def _remove_cgroup(self) -> list[str]:
        if not self.cgroup.exists():
            return []
        deadline = time.monotonic() + 10
        while _populated(self.cgroup) and time.monotonic() < deadline:
            self._kill_cgroup()
            time.sleep(0.05)
        if _rmdir_cgroup_tree(self.cgroup, tries=50):
            return []
        return [f"cgroup {self.cgroup} could not be removed"]


def _rmdir_cgroup_tree(cgroup: Path, tries: int = 1) -> bool:
    """rmdir an empty cgroup and its children, deepest first; True when it is gone."""
    for d in sorted((Path(d) for d, _, _ in os.walk(cgroup)), key=lambda p: -len(p.parts)):
        for _ in range(tries):
            try:
                d.rmdir()
                break
            except FileNotFoundError:
                break
            except OSError:  # EBUSY while the last exits are accounted
                time.sleep(0.02)
    return not cgroup.exists()


def _remove_leftovers(cgroup_parent: Path) -> None:
    """Remove what runs killed before their teardown left: empty cgroups, their work dirs."""
    for cgroup in cgroup_parent.glob(f"{PREFIX}*"):
        workdir = Path(tempfile.gettempdir()) / cgroup.name
        with contextlib.suppress(OSError, ValueError):
            owner = int((workdir / "owner").read_text())
            os.kill(owner, 0)
            continue  # its test process still runs (maybe booting right now)
        if not _populated(cgroup) and _rmdir_cgroup_tree(cgroup):
            shutil.rmtree(workdir, ignore_errors=True)
            _Canary(workdir.name).remove()


def _populated(cgroup: Path) -> bool:
    try:
        return "populated 1" in (cgroup / "cgroup.events").read_text()
    except OSError:
        return False


def _ns_pid(host_pid: int) -> Optional[int]:
    """The innermost namespace pid of a host pid (from /proc/PID/status NSpid)."""
    try:
        for line in Path(f"/proc/{host_pid}/status").read_text().splitlines():
            if line.startswith("NSpid:"):
                return int(line.split()[-1])
    except OSError:
        pass
    return None


def _fmt(argv: Sequence[str]) -> str:
    return " ".join(argv)


def _out(cp: subprocess.CompletedProcess[str]) -> str:
    return "\n".join(s.strip() for s in (cp.stdout, cp.stderr) if s and s.strip())


@contextlib.contextmanager
def booted_systemd(
    units: Optional[Mapping[str, str]] = None,
    dropins: Optional[Mapping[str, str]] = None,
    files: Optional[Mapping[str, Union[Content, File]]] = None,
    *,
    boot_timeout: float = 20,
    stop_timeout: float = 60,
) -> Iterator[Systemd]:
    """Boot a test systemd with these units, drop-ins and files; tear it down on exit.

    ``units`` and ``dropins`` map names relative to the unit directory (``x.service``,
    ``x.service.d/y.conf``) to their text; they may replace the harness's own stub units.
    ``files`` maps absolute paths inside to text, bytes or ``File``. Raises
    ``SystemdUnavailable`` when the machine cannot do it.
    """
    preflight()
    cgroup_parent = _cgroup2_mount() / _own_cgroup2_path().lstrip("/")
    _remove_leftovers(cgroup_parent)
    workdir = Path(tempfile.mkdtemp(prefix=PREFIX))
    (workdir / "owner").write_text(str(os.getpid()))
    canary = _Canary(workdir.name).create()
    cgroup = cgroup_parent / workdir.name
    sd: Optional[Systemd] = None
    try:
        try:
            cgroup.mkdir()
        except OSError as e:
            raise SystemdUnavailable(f"cannot create a cgroup2 directory {cgroup}: {e}") from e
        stage = workdir / "stage"
        staged: dict[str, Union[Content, File]] = {f"{EMPTY_DIR}/.keep": ""}
        staged["/etc/systemd/journald.conf.d/sysd-harness.conf"] = _JOURNALD_CONF
        for name, text in {**_base_units(), **(units or {}), **(dropins or {})}.items():
            staged[f"{UNIT_DIR}/{name}"] = text
        staged.update(files or {})
        _stage_files(stage, staged)
        (workdir / "scratch").mkdir()
        (workdir / "console.log").touch()
        (workdir / "setup.sh").write_text(SETUP_SCRIPT)
        enter = 'echo $$ > "$1/cgroup.procs" && shift && exec "$@"'
        argv = [
            "sh", "-c", enter, "sysd-enter", str(cgroup),
            # If this test process dies, take the namespace along (SIGKILL to unshare).
            "setpriv", "--pdeathsig", "KILL", "--",
            "unshare", "--pid", "--fork", "--kill-child", "--mount", "--propagation", "private",
            "--uts", "--ipc", "--cgroup", "--",
            "/bin/sh", str(workdir / "setup.sh"),
            str(workdir / "scratch"), str(stage), str(workdir / "console.log"),
        ]  # fmt: skip
        env = {"PATH": INSIDE_PATH, "INSIDE_PATH": INSIDE_PATH, "UNIT_DIR": UNIT_DIR,
               "EMPTY_DIR": EMPTY_DIR, "LANG": "C.UTF-8"}  # fmt: skip
        with open(workdir / "setup.log", "wb") as log:
            proc = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=env,
                start_new_session=True,
            )  # fmt: skip
        sd = Systemd(proc, cgroup, workdir)
        sd._wait_booted(boot_timeout)
        canary.check("after boot")
        for path in _venv_paths():
            sd.make_reachable(path)
        yield sd
    finally:
        problems = sd._teardown(stop_timeout) if sd is not None else []
        if sd is None and cgroup.exists():
            with contextlib.suppress(OSError):
                cgroup.rmdir()
        canary.check("after teardown")
        canary.remove()
        if not problems:
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            raise SystemdError("teardown: " + "; ".join(problems) + f" (logs kept in {workdir})")


def ci_strict() -> bool:
    """In CI (``CI=true``) an environment that cannot boot systemd fails instead of skipping."""
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


@contextlib.contextmanager
def boot_or_skip(**kwargs: object) -> Iterator[Systemd]:
    """``booted_systemd`` for pytest: skips (fails under ``CI=true``) if it cannot boot here."""
    import pytest

    with contextlib.ExitStack() as stack:
        try:
            sd = stack.enter_context(booted_systemd(**kwargs))  # type: ignore[arg-type]
        except SystemdUnavailable as e:
            reason = f"cannot boot a test systemd here: {e}"
            if ci_strict():
                pytest.fail(reason)
            print(f"SKIP: {reason}")
            pytest.skip(reason)
        yield sd


def shipped_template() -> dict[str, str]:
    """``units=`` entries for the shipped template unit, running this checkout's venv binary,
    and the socket unit it requires."""
    return {
        TEMPLATE_UNIT.name: with_venv_binary(TEMPLATE_UNIT.read_text()),
        TEMPLATE_SOCKET.name: TEMPLATE_SOCKET.read_text(),
    }


def _venv_paths() -> list[str]:
    """This checkout and its venv's real interpreter, which services must be able to reach."""
    python = VENV_BIN / "python"
    paths = [str(REPO)]
    if python.exists():
        paths.append(str(Path(os.path.realpath(python)).parent))
    return paths


def with_venv_binary(unit_text: str) -> str:
    """The unit text with the installed ``/usr/bin/uwsgi-supervisor`` replaced by this venv's.

    A checkout under /tmp or /var/tmp (a CI clone, say) would be hidden from the service
    by the unit's own PrivateTmp=yes: it is bound back in, read-only, for that case only.
    """
    text = unit_text.replace(INSTALLED_BIN, str(VENV_BIN / "uwsgi-supervisor"))
    hidden = [
        p
        for p in _venv_paths()
        if Path(p).is_relative_to("/tmp") or Path(p).is_relative_to("/var/tmp")
    ]
    if hidden and "\n[Service]\n" in text:
        binds = "".join(f"BindReadOnlyPaths={p}\n" for p in hidden)
        text = text.replace("\n[Service]\n", f"\n[Service]\n{binds}", 1)
    return text
