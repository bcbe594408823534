"""The runtime dir is ours alone (issue 10, item 9): another local user (the real
`nobody`) who makes it first, or plants a symlink on its way or at a file we
write, gets a refusal or a new file, never our data; and every file there is
private (item 10). Real supervisor, real uWSGI, real files."""

from __future__ import annotations

import os
import stat
import subprocess
import time
from pathlib import Path

import pytest
from conftest import require
from harness import Supervised, copy_app, spec_yaml
from kit.net import free_port
from kit.wait import wait_until

from supervisor.codepush.preflight import Preflight
from supervisor.exitcodes import Exit
from supervisor.spec.load import load_spec
from supervisor.status import ReloadVerdict, Snapshot, state_doc, write_state
from supervisor.uwsgi import procs
from supervisor.uwsgi.runtime import prepare_runtime_dir

NOBODY = 65534
SECRET = "the service user's private file\n"


@pytest.fixture(autouse=True)
def as_root() -> None:
    require(os.geteuid() == 0, "acting as another user (nobody) needs root")


def as_nobody(*argv: str) -> None:
    """Run a command as the real local user `nobody`, as an attacker would."""
    subprocess.run(argv, user=NOBODY, group=NOBODY, check=True, timeout=30)


def shared_tmp(tmp: Path) -> Path:
    """A dir like /tmp (1777: everyone may create, only owners may remove)."""
    os.chmod(tmp, 0o755)  # let nobody reach it
    shared = tmp / "tmp"
    shared.mkdir()
    os.chmod(shared, 0o1777)
    return shared


def refused(tmp: Path, runtime_dir: Path) -> tuple[Supervised, int]:
    """Start the supervisor on `runtime_dir`; return it and its exit code."""
    app = tmp / "app" if (tmp / "app").exists() else copy_app("blog", tmp / "app")
    sup = Supervised(tmp, spec_yaml(app, runtime_dir, "blog:app", free_port()))
    sup.start(wait_ready=False)
    try:
        code = sup.wait_exit(timeout=30)
        sent = sup.notify.keys()
        assert "READY" not in sent, sent
    finally:
        sup.close()
    assert not procs.instance_pids(runtime_dir), "a uWSGI was started"
    return sup, code


def test_a_runtime_dir_another_user_made_first_is_refused_and_left_untouched(
    short_tmp: Path,
) -> None:
    shared = shared_tmp(short_tmp)
    parent = shared / "uwsgi-supervisor-0"
    as_nobody("mkdir", "-m", "0755", str(parent), str(parent / "app"))
    sup, code = refused(short_tmp, parent / "app")
    assert code == Exit.CANTCREAT
    log = sup.log()
    assert f"{parent} (owner nobody (uid 65534), mode drwxr-xr-x 0755)" in log, log
    assert "is not owned by root (uid 0)" in log and "Remove it" in log
    assert os.listdir(parent / "app") == []  # nothing written into it
    assert "Traceback" not in log


def test_the_dir_itself_owned_by_another_user_is_refused(short_tmp: Path) -> None:
    """Not only under /tmp: a runtime dir someone else owns is not ours to use."""
    rt = short_tmp / "rt"
    rt.mkdir(mode=0o700)
    os.chown(rt, NOBODY, NOBODY)
    sup, code = refused(short_tmp, rt)
    assert code == Exit.CANTCREAT
    assert f"{rt} (owner nobody (uid 65534)" in sup.log()
    assert os.listdir(rt) == []


def test_a_symlink_planted_at_the_parent_or_the_dir_is_refused(short_tmp: Path) -> None:
    shared = shared_tmp(short_tmp)
    victim = short_tmp / "victim"  # where the planted link points: someone's private dir
    victim.mkdir(mode=0o700)
    (victim / "app").mkdir(mode=0o700)
    as_nobody("ln", "-s", str(victim), str(shared / "uwsgi-supervisor-0"))
    sup, code = refused(short_tmp, shared / "uwsgi-supervisor-0" / "app")
    assert code == Exit.CANTCREAT
    assert f"{shared / 'uwsgi-supervisor-0'} (owner nobody (uid 65534), mode lrwxrwxrwx" in (
        sup.log()
    )
    assert f"is a symlink -> {victim}" in sup.log()
    assert os.listdir(victim / "app") == []

    # A symlink at the runtime dir itself, even one root made: refused too.
    (short_tmp / "real").mkdir(mode=0o700)
    (short_tmp / "rt").symlink_to(short_tmp / "real")
    sup, code = refused(short_tmp, short_tmp / "rt")
    assert code == Exit.CANTCREAT and "is a symlink" in sup.log()
    assert os.listdir(short_tmp / "real") == []


@pytest.mark.parametrize("mode", [0o777, 0o770, 0o1777])
def test_a_dir_writable_by_group_or_others_is_refused(short_tmp: Path, mode: int) -> None:
    rt = short_tmp / "rt"
    rt.mkdir()
    os.chmod(rt, mode)
    sup, code = refused(short_tmp, rt)
    assert code == Exit.CANTCREAT
    assert f"{rt} (owner root (uid 0), mode " in sup.log()
    assert "writable by group or others" in sup.log() and "chmod go-w" in sup.log()
    assert os.listdir(rt) == []


def test_a_parent_anyone_may_write_without_the_sticky_bit_is_refused(short_tmp: Path) -> None:
    open_dir = short_tmp / "open"
    open_dir.mkdir()
    os.chmod(open_dir, 0o777)
    sup, code = refused(short_tmp, open_dir / "rt")
    assert code == Exit.CANTCREAT
    assert "writable by others without the sticky bit" in sup.log()
    assert not (open_dir / "rt").exists()


def test_the_default_layout_is_made_private_and_planted_links_are_not_followed(
    short_tmp: Path,
) -> None:
    """The normal case in a /tmp-like dir: parents made 0700, the dir 0711 (nginx
    reaches app.sock), every file 0600; links planted at our files (as the
    service user could) are replaced, their targets unchanged."""
    shared = shared_tmp(short_tmp)
    rt = shared / "uwsgi-supervisor-0" / "app"
    victim = short_tmp / "victim"
    victim.write_text(SECRET)
    rt.parent.mkdir(mode=0o700)  # as an earlier start made them
    rt.mkdir(mode=0o700)
    planted = ["state.json", "supervisor.lock", "wsgi_entry.py", "uwsgi-1.log"]
    for name in planted:
        (rt / name).symlink_to(victim)
    app = copy_app("blog", short_tmp / "app")
    with Supervised(short_tmp, spec_yaml(app, rt, "blog:app", free_port())) as sup:
        sup.start()
        sup.wait_state("running")
        assert stat.S_IMODE(os.lstat(rt).st_mode) == 0o711
        for name in planted:
            st = os.lstat(rt / name)
            assert stat.S_ISREG(st.st_mode), name
            assert stat.S_IMODE(st.st_mode) == 0o600, name
        files = [p for p in rt.iterdir() if p.is_file() and not p.is_symlink()]
        assert {p.name for p in files} >= set(planted)
        for path in files:
            assert stat.S_IMODE(path.stat().st_mode) == 0o600, path.name
    assert victim.read_text() == SECRET


def test_a_symlink_at_preflight_out_is_replaced_not_written_through(short_tmp: Path) -> None:
    app = copy_app("blog", short_tmp / "app")
    rt = shared_tmp(short_tmp) / "uwsgi-supervisor-0" / "app"  # made here, parent too
    spec_file = short_tmp / "app.yaml"
    spec_file.write_text(spec_yaml(app, rt, "blog:app", free_port()))
    spec = load_spec(spec_file)
    lock = prepare_runtime_dir(spec)
    try:
        assert stat.S_IMODE(os.lstat(rt.parent).st_mode) == 0o700
        assert stat.S_IMODE(os.lstat(rt).st_mode) == 0o711  # nginx reaches app.sock
        from supervisor.uwsgi.command import write_entry

        write_entry(spec)
        victim = short_tmp / "victim"
        victim.write_text(SECRET)
        (rt / "preflight.out").symlink_to(victim)
        check = Preflight()
        check.start(time.monotonic(), spec)
        result = wait_until(lambda: check.poll(time.monotonic()), 30, "the import check")
        assert result.ok, result.output
        st = os.lstat(rt / "preflight.out")
        assert stat.S_ISREG(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o600
        assert victim.read_text() == SECRET
    finally:
        lock.close()


def test_write_state_replaces_a_planted_symlink(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_text(SECRET)
    (tmp_path / "state.json").symlink_to(victim)
    from supervisor.lifecycle.states import State

    snap = Snapshot(
        name="t", state=State.RUNNING, processes=1, generation=1, crashes=0, deadline=None,
        stats=None, reload_mode=None, reload_reason=None, old_pids=frozenset(),
        last_reload=None, last_exit=None, uwsgi_pid=None, watching=None, error=None, tail=(),
        refused=None, verdict=ReloadVerdict(seq=0, ok=True, message=""),
    )  # fmt: skip
    write_state(tmp_path / "state.json", state_doc(snap, "serving", 0.0, 1))
    st = os.lstat(tmp_path / "state.json")
    assert stat.S_ISREG(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o600
    assert victim.read_text() == SECRET
