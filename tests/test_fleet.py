"""The Ansible role and the rolling release, on a fleet of three hosts (packaging/ansible).

Each host is a throwaway systemd (tests/sysd.py) running sshd on its own loopback port and,
once the role installed it, nginx on its own loopback port. The real ``ansible-playbook``
(ansible-core from PyPI) drives them over SSH to 127.0.0.1:PORT as root with a test key,
exactly as it would drive servers. Each host's packages are the host machine's (the overlay's
lower layer: the role's ``apt`` finds them installed); uwsgi-supervisor and uWSGI come from a
wheelhouse built here from this checkout with Debian's Python, which the role copies to every
host and installs into /opt/uwsgi-supervisor. Test-only settings, all role variables: the
harness's unit directory for the units, nginx on 127.0.0.1:PORT, Debian's default site
removed (all three share this machine's port 80), a 3 s bake to keep the test short.

In order, on the same fleet:

1. ``site.yml`` converges all three hosts (first release deployed, units, spec, nginx); each
   serves release 1 through its nginx. A second run reports ``changed=0`` everywhere.
2. On the canary alone: a spec ``check`` refuses and a server block ``nginx -t`` refuses
   each fail the run and land nowhere (the app and nginx serve on); a good spec change
   reaches the app through the role's reload handler.
3. ``release.yml`` rolls release 2 under wrk on every host's nginx: the canary, then the two
   others; all three serve it, 0 failed requests; release 1 is pruned (keep 1).
4. ``release.yml`` rolls release 3, which imports but fails on every request: the canary's
   supervisor refuses it, the run exits non-zero with the verdict's reason, the canary's
   ``current`` points at release 2 again, the two others never saw release 3, and all three
   served release 2 throughout, 0 failed requests.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from conftest import require
from kit import wrk
from kit.deb import SYSTEM_PYTHON
from kit.net import free_port, serves
from kit.wait import wait_until
from sysd import REPO, UNIT_DIR, VENV_BIN, File, Systemd, boot_or_skip

from supervisor import __version__

pytestmark = [pytest.mark.systemd, pytest.mark.slow, pytest.mark.beside_matrix]

ANSIBLE_DIR = REPO / "packaging" / "ansible"
ANSIBLE_PLAYBOOK = VENV_BIN / "ansible-playbook"
SSHD = "/usr/sbin/sshd"
HOSTS = 3
APP = "fleet"
DEPLOY_TO = f"/srv/{APP}"
PLAYBOOK_TIMEOUT = 240  # seconds, for one ansible-playbook run
WRK_LIMIT = 150  # seconds: wrk's own bound; it is interrupted once the rollout is over
WRK_CONNECTIONS = 4  # per host, each waiting WRK_PAUSE_MS between its requests
WRK_PAUSE_MS = 10
CACHE_HOME = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))

RELEASE = """\
import os

VERSION = "{version}"


def app(environ, start_response):
    {body}
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [("%s pid=%d\\n" % (VERSION, os.getpid())).encode()]
"""
GOOD = "pass"
# Imports fine (the import check passes), fails on every request: only a request finds it.
BROKEN = 'raise RuntimeError("the database is gone")'

SSHD_UNIT = f"""\
[Unit]
Description=OpenSSH server of a test fleet host

[Service]
ExecStart={SSHD} -D -e -f /etc/ssh/fleet_sshd_config
RuntimeDirectory=sshd
RuntimeDirectoryMode=0755
"""
SSHD_CONFIG = """\
Port {port}
ListenAddress 127.0.0.1
HostKey /etc/ssh/fleet_host_key
AuthorizedKeysFile /etc/ssh/fleet_authorized_keys
PermitRootLogin prohibit-password
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
PidFile /run/sshd.pid
Subsystem sftp /usr/lib/openssh/sftp-server
"""


@dataclass(frozen=True)
class Host:
    name: str
    sd: Systemd
    ssh_port: int
    http_port: int

    def current(self) -> str:
        return self.sd.run(["readlink", f"{DEPLOY_TO}/current"], check=True).stdout.strip()

    def has_release(self, release: str) -> bool:
        return self.sd.run(["test", "-e", f"{DEPLOY_TO}/releases/{release}"]).returncode == 0


def require_tools() -> None:
    require(ANSIBLE_PLAYBOOK.exists(), f"{ANSIBLE_PLAYBOOK} not found (pip install -e '.[test]')")
    require(Path(SSHD).exists(), f"{SSHD} not found (apt-get install openssh-server)")
    for tool, package in (("ssh", "openssh-client"), ("ssh-keygen", "openssh-client"),
                          ("wrk", "wrk"), ("nginx", "nginx-light")):  # fmt: skip
        found = shutil.which(tool, path=os.environ.get("PATH", "") + ":/usr/sbin")
        require(found is not None, f"{tool} not found (apt-get install {package})")
    venv_ok = subprocess.run([SYSTEM_PYTHON, "-c", "import ensurepip"], capture_output=True)
    require(venv_ok.returncode == 0, "python3 -m venv unavailable (apt-get install python3-venv)")


def pip_cache() -> Path:
    """packaging/deb/build's pip cache for this Python: uWSGI compiles once per machine."""
    key = subprocess.run(
        ["sh", "-c", f"{SYSTEM_PYTHON} -c 'import sys; print(sys.version)'"
         f" | cat - \"$(readlink -f {SYSTEM_PYTHON})\" | cksum | cut -d' ' -f1"],
        check=True, capture_output=True, text=True,
    ).stdout.strip()  # fmt: skip
    return CACHE_HOME / "uwsgi-supervisor-packaging" / key


def build_wheelhouse(out: Path) -> None:
    """Wheels of this checkout and its dependencies for Debian's Python (what hosts run)."""
    builder = CACHE_HOME / "uwsgi-supervisor-fleet" / "venv"
    builder.parent.mkdir(parents=True, exist_ok=True)
    if not (builder / "bin" / "pip").exists():
        subprocess.run([SYSTEM_PYTHON, "-m", "venv", str(builder)], check=True)
    src = out.parent / "src"  # pip and setuptools write build files next to the sources
    src.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy2(REPO / name, src / name)
    shutil.copytree(REPO / "supervisor", src / "supervisor",
                    ignore=shutil.ignore_patterns("__pycache__"))  # fmt: skip
    env = {**os.environ, "PIP_CACHE_DIR": str(pip_cache()), "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    subprocess.run(
        [str(builder / "bin" / "pip"), "wheel", "--quiet", "--use-pep517",
         "--wheel-dir", str(out), str(src)],
        check=True, env=env, timeout=600,
    )  # fmt: skip


def write_release(root: Path, version: str, body: str) -> Path:
    d = root / version
    d.mkdir(parents=True)
    (d / "hello.py").write_text(RELEASE.format(version=f"v{version}", body=body))
    return d


def inventory(hosts: list[Host], key: Path, wheels: Path, release_1: Path) -> str:
    """The fleet's inventory, in YAML (an INI inventory's group vars are only strings)."""
    ssh_args = "-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null"
    group_vars = {
        "ansible_host": "127.0.0.1",
        "ansible_user": "root",
        "ansible_ssh_private_key_file": str(key),
        "ansible_ssh_common_args": ssh_args,
        "ansible_python_interpreter": SYSTEM_PYTHON,
        "ansible_become": False,  # root already: these hosts have no sudo
        "uwsgi_supervisor_app": APP,
        "uwsgi_supervisor_module": "hello:app",
        "uwsgi_supervisor_release": "1",
        "uwsgi_supervisor_release_src": str(release_1),
        "uwsgi_supervisor_version": __version__,
        "uwsgi_supervisor_wheelhouse": str(wheels),
        "uwsgi_supervisor_packages": ["python3-venv", "python3-pkg-resources"],
        "uwsgi_supervisor_nginx_package": "nginx-light",
        "uwsgi_supervisor_unit_dir": UNIT_DIR,
        # The harness's manager reads units from UNIT_DIR only, so `systemctl is-enabled`
        # never sees the links `enable` makes in /etc/systemd/system: "changed" every run.
        # One run on the canary turns it on and finds the links.
        "uwsgi_supervisor_enable_at_boot": False,
        "uwsgi_supervisor_nginx_remove_default_site": True,
        # Pruning shows after release 2 (release 1 goes); a rollback needs no old tree.
        "uwsgi_supervisor_keep_releases": 1,
        "uwsgi_supervisor_spec": {"uwsgi": {"processes": 2}, "health": {"bake": "3s"}},
    }
    host_vars = {
        h.name: {
            "ansible_port": h.ssh_port,
            "uwsgi_supervisor_nginx_listen": f"127.0.0.1:{h.http_port}",
        }
        for h in hosts
    }
    doc = {"uwsgi_supervisor": {"hosts": host_vars, "vars": group_vars}}
    return yaml.safe_dump(doc, sort_keys=False)


@dataclass
class Run:
    rc: int
    out: str
    seconds: float

    def recap(self) -> dict[str, dict[str, int]]:
        """PLAY RECAP: host -> {ok, changed, unreachable, failed, ...}."""
        result = {}
        for m in re.finditer(r"^(\S+)\s+:\s+((?:\w+=\d+\s*)+)$", self.out, re.M):
            result[m.group(1)] = {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", m.group(2))}
        return result


class Fleet:
    def __init__(self, hosts: list[Host], workdir: Path, inventory_path: Path) -> None:
        self.hosts, self.workdir, self.inventory = hosts, workdir, inventory_path
        self.runs = 0

    def playbook(self, name: str, *extra: str) -> Run:
        self.runs += 1
        env = {
            "PATH": f"{VENV_BIN}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "HOME": str(self.workdir),
            "LANG": "C.UTF-8",
            "ANSIBLE_CONFIG": str(self.workdir / "ansible.cfg"),
            "ANSIBLE_HOST_KEY_CHECKING": "False",
            "ANSIBLE_PIPELINING": "True",
            # One SSH connection per host and run, gone 5 s after it (ssh takes the first
            # value of each option: these replace Ansible's defaults).
            "ANSIBLE_SSH_ARGS": "-o ControlMaster=auto -o ControlPersist=5s",
            "ANSIBLE_SSH_CONTROL_PATH_DIR": str(self.workdir / "cp"),
            "ANSIBLE_FORKS": str(HOSTS),
            "ANSIBLE_NOCOLOR": "1",
            "ANSIBLE_LOCAL_TEMP": str(self.workdir / "ansible-tmp"),
            "ANSIBLE_RETRY_FILES_ENABLED": "False",
            # Each task's time per host, for a slow run: junit-*.xml in the work dir.
            "ANSIBLE_CALLBACKS_ENABLED": "junit",
            "JUNIT_OUTPUT_DIR": str(self.workdir / "junit"),
        }
        argv = [str(ANSIBLE_PLAYBOOK), "-i", str(self.inventory), str(ANSIBLE_DIR / name), *extra]
        started = time.monotonic()
        cp = subprocess.run(
            argv, env=env, cwd=self.workdir, capture_output=True, text=True,
            timeout=PLAYBOOK_TIMEOUT, stdin=subprocess.DEVNULL,
        )  # fmt: skip
        run = Run(cp.returncode, cp.stdout + cp.stderr, time.monotonic() - started)
        log = self.workdir / f"run-{self.runs}-{name}.log"
        log.write_text(run.out)
        print(f"ansible-playbook {name} {' '.join(extra)}: exit {run.rc} in {run.seconds:.1f}s")
        return run

    def diagnose(self) -> str:
        parts = []
        for h in self.hosts:
            status = h.sd.systemctl("status", "--lines=20", "--full", f"uwsgi-supervisor@{APP}")
            parts.append(f"--- {h.name}\n{status.stdout}")
        return "\n".join(parts)


def paced_script(where: Path) -> Path:
    """wrk's summary script plus a pause between requests: a steady load on every host that
    leaves this 2-core machine room for the rollout itself."""
    path = where / "paced.lua"
    if not path.exists():
        pause = f"\ndelay = function()\n  return {WRK_PAUSE_MS}\nend\n"
        path.write_text(wrk.LUA.read_text() + pause)
    return path


@contextlib.contextmanager
def under_wrk(fleet: Fleet) -> Iterator[list[dict[str, int]]]:
    """wrk on every host's nginx while the block runs; the summaries once it is over."""
    argv = ["wrk", "-t1", f"-c{WRK_CONNECTIONS}", f"-d{WRK_LIMIT}s", "--timeout", "30s",
            "-s", str(paced_script(fleet.workdir))]  # fmt: skip
    procs = [
        subprocess.Popen(
            [*argv, f"http://127.0.0.1:{h.http_port}/"],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )  # fmt: skip
        for h in fleet.hosts
    ]
    results: list[dict[str, int]] = []
    try:
        time.sleep(1)  # load before the rollout starts
        yield results
        time.sleep(1)  # and after it ended
    finally:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGINT)  # all at once: each stops and prints its summary
        for p in procs:
            results.append(wrk.stop(p, timeout=30))


def assert_no_failures(what: str, results: list[dict[str, int]], hosts: list[Host]) -> None:
    for h, r in zip(hosts, results):
        print(f"{what}: {h.name}: {r['failed']} failed of {r['requests']} requests"
              f" (worst {r['latency_max_us'] / 1e6:.2f}s)")  # fmt: skip
    for h, r in zip(hosts, results):
        assert r["requests"] > 0, f"{what}: no request reached {h.name}"
        assert r["failed"] == 0, f"{what}: {h.name}: {r}"


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    require_tools()
    work = tmp_path_factory.mktemp("fleet")
    started = time.monotonic()
    wheels = work / "wheels"
    build_wheelhouse(wheels)
    print(f"wheelhouse built in {time.monotonic() - started:.1f}s")
    key = work / "id_ed25519"
    host_key = work / "host_key"
    for path in (key, host_key):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)], check=True)
    nginx_unit = Path("/lib/systemd/system/nginx.service").read_text()
    with contextlib.ExitStack() as stack:
        hosts = []
        for i in range(HOSTS):
            ssh_port, http_port = free_port(), free_port()
            files = {
                "/etc/ssh/fleet_sshd_config": SSHD_CONFIG.format(port=ssh_port),
                "/etc/ssh/fleet_host_key": File(host_key.read_bytes(), mode=0o600),
                "/etc/ssh/fleet_authorized_keys": File(Path(f"{key}.pub").read_bytes()),
            }
            units = {"fleet-sshd.service": SSHD_UNIT, "nginx.service": nginx_unit}
            sd = stack.enter_context(boot_or_skip(units=units, files=files))
            sd.start("fleet-sshd.service")
            hosts.append(Host(f"host{i}", sd, ssh_port, http_port))
        (work / "ansible.cfg").write_text("[defaults]\n")
        inv = work / "inventory.yml"
        inv.write_text(inventory(hosts, key, wheels, write_release(work / "releases", "1", GOOD)))
        yield Fleet(hosts, work, inv)


def test_install_converges_then_changes_nothing(fleet: Fleet) -> None:
    first = fleet.playbook("site.yml")
    assert first.rc == 0, first.out[-6000:]
    for h in fleet.hosts:
        assert serves(h.http_port, "v1"), f"{h.name} does not serve release 1\n{fleet.diagnose()}"
        assert h.current() == f"{DEPLOY_TO}/releases/1"
    second = fleet.playbook("site.yml")
    assert second.rc == 0, second.out[-6000:]
    recap = second.recap()
    assert sorted(recap) == [h.name for h in fleet.hosts], second.out[-3000:]
    changed = {name: r["changed"] for name, r in recap.items()}
    assert changed == dict.fromkeys(recap, 0), second.out[-6000:]
    print(f"install: {first.seconds:.1f}s; second run: {second.seconds:.1f}s, changed=0")


def test_a_bad_spec_or_nginx_block_never_lands_and_a_good_change_reloads(fleet: Fleet) -> None:
    """On the canary only (--limit): each file is checked before it lands, so a bad one fails
    the run and leaves the running app and nginx as they were; a good spec change reaches
    the app through the role's handler (`systemctl reload`, which waits for the verdict)."""
    canary = fleet.hosts[0]
    spec_path = f"/etc/uwsgi-supervisor/{APP}.yaml"
    server_path = f"/etc/nginx/conf.d/uwsgi-supervisor-{APP}.conf"

    def host_file(path: str) -> str:
        return canary.sd.run(["cat", path], check=True).stdout

    spec_before, server_before = host_file(spec_path), host_file(server_path)
    limit = ("--limit", canary.name)

    bad_spec = '{"uwsgi_supervisor_spec": {"uwsgi": {"processes": 0}}}'
    run = fleet.playbook("site.yml", *limit, "-e", bad_spec)
    assert run.rc != 0, run.out[-6000:]
    assert "uwsgi.processes" in run.out, run.out[-6000:]  # check's FILE:LINE:COL message
    assert host_file(spec_path) == spec_before
    assert serves(canary.http_port, "v1")

    run = fleet.playbook("site.yml", *limit, "-e", "uwsgi_supervisor_nginx_listen=127.0.0.1:99999")
    assert run.rc != 0, run.out[-6000:]
    assert "invalid port" in run.out, run.out[-6000:]  # nginx -t's words
    assert host_file(server_path) == server_before
    assert serves(canary.http_port, "v1")

    # With enable at boot, as the role's default has it: the links a reboot starts from.
    three = '{"uwsgi_supervisor_spec": {"uwsgi": {"processes": 3}, "health": {"bake": "3s"}}}'
    boot = "uwsgi_supervisor_enable_at_boot=true"
    run = fleet.playbook("site.yml", *limit, "-e", three, "-e", boot)
    assert run.rc == 0, run.out[-6000:]
    assert "RUNNING HANDLER [uwsgi_supervisor : Reload the app]" in run.out, run.out[-6000:]
    status = canary.sd.run(["/usr/bin/uwsgi-supervisor", "status", spec_path]).stdout
    assert "serving: 3/3 workers" in status, status
    assert serves(canary.http_port, "v1")
    for link in (f"multi-user.target.wants/uwsgi-supervisor@{APP}.service",
                 f"sockets.target.wants/uwsgi-supervisor@{APP}.socket"):  # fmt: skip
        found = canary.sd.run(["readlink", f"/etc/systemd/system/{link}"])
        assert found.returncode == 0, f"{link} not enabled at boot:\n{run.out[-3000:]}"


def test_good_release_rolls_under_load(fleet: Fleet) -> None:
    src = write_release(fleet.workdir / "releases", "2", GOOD)
    args = ("-e", "uwsgi_supervisor_release=2", "-e", f"uwsgi_supervisor_release_src={src}")
    with under_wrk(fleet) as results:
        run = fleet.playbook("release.yml", *args)
    assert run.rc == 0, run.out[-6000:] + fleet.diagnose()
    assert_no_failures("release 2", results, fleet.hosts)
    for h in fleet.hosts:
        assert h.current() == f"{DEPLOY_TO}/releases/2"
        assert not h.has_release("1"), f"{h.name}: release 1 was not pruned (keep 1)"
        wait_until(lambda h=h: serves(h.http_port, "v2"), 10, f"{h.name} serving release 2")
    print(f"release 2 rolled in {run.seconds:.1f}s")


def test_bad_release_is_refused_by_the_canary(fleet: Fleet) -> None:
    src = write_release(fleet.workdir / "releases", "3", BROKEN)
    args = ("-e", "uwsgi_supervisor_release=3", "-e", f"uwsgi_supervisor_release_src={src}")
    with under_wrk(fleet) as results:
        run = fleet.playbook("release.yml", *args)
    assert run.rc != 0, run.out[-6000:]
    assert "release 3 was not applied on host0" in run.out, run.out[-6000:]
    # The verdict's reason: the new master's health check got no answer, and why.
    assert "swap refused: health check failed" in run.out, run.out[-6000:]
    assert "RuntimeError in hello.py line 7: the database is gone (exit 1)." in run.out, run.out
    assert_no_failures("release 3", results, fleet.hosts)
    canary, *others = fleet.hosts
    assert canary.has_release("3")
    assert canary.current() == f"{DEPLOY_TO}/releases/2", "current was not flipped back"
    for h in others:
        assert not h.has_release("3"), f"{h.name} was touched"
        assert h.current() == f"{DEPLOY_TO}/releases/2"
    for h in fleet.hosts:
        assert serves(h.http_port, "v2"), f"{h.name} does not serve release 2"
    reason = re.search(r"was not applied on host0:(.*)", run.out)
    print(f"release 3 refused in {run.seconds:.1f}s:{reason.group(1) if reason else ''}")
