"""From file changes (or a reload signal) to a reload: CodePush and the Gate
with a fake clock.

The watcher and the import check are fakes; the machine is the real one on
a fake controller, so the reload a change leads to shows in its calls.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Optional

import pytest
from fakes import make_machine, make_spec, stats

from supervisor.codepush.debounce import Change
from supervisor.codepush.gate import TREE_POLL, Gate
from supervisor.codepush.glue import CodePush
from supervisor.codepush.preflight import Preflight, PreflightResult
from supervisor.codepush.watcher import CodeWatcher
from supervisor.lifecycle.machine import PAUSE_SETTLE, Machine
from supervisor.lifecycle.states import State
from supervisor.spec.model import BackoffSpec, ReloadMode, Spec, WatchSpec, runtime_paths

DEBOUNCE = 0.2
CHECK_TIMEOUT = 30.0
EDIT = Change("/srv/blog/blog.py", "modified", "blog.py")


class FakeWatcher(CodeWatcher):
    """Hands out the changes a test queued; never watches anything."""

    def __init__(self, path: Path) -> None:
        super().__init__([path], (), (), (), False, lambda: None, lambda line: None)
        self.queued: list[Change] = []

    def drain(self) -> list[Change]:
        changes, self.queued = self.queued, []
        return changes


class FakePreflight(Preflight):
    """An import check that ends when a test says so."""

    def __init__(self) -> None:
        super().__init__()
        self.checking = False
        self.result: Optional[PreflightResult] = None
        self.started_at: list[float] = []

    @property
    def running(self) -> bool:
        return self.checking

    def start(self, now: float, spec: Spec) -> None:
        self.checking = True
        self.result = None
        self.started_at.append(now)
        self.deadline = now + spec.watch.preflight_timeout

    def poll(self, now: float) -> Optional[PreflightResult]:
        if not self.checking or self.result is None:
            return None
        self.checking = False
        return self.result

    def cancel(self) -> None:
        self.checking = False


PASSED = PreflightResult(True, "", "", 0.4)
FAILED = PreflightResult(
    False,
    "SyntaxError in blog.py line 3: invalid syntax",
    'Traceback (most recent call last):\n  File "/srv/blog/blog.py", line 3\n'
    "SyntaxError: invalid syntax\n",
    0.3,
)


class Rig:
    """A running machine, its fake controller and a CodePush with fake parts."""

    def __init__(self, tmp_path: Path, mode: ReloadMode = ReloadMode.GRACEFUL, **spec: object):
        base = make_spec(**spec)  # restart settings
        app_dir = tmp_path / "app"
        runtime_dir = tmp_path / "rt"
        app_dir.mkdir()
        runtime_dir.mkdir()
        self.spec = replace(
            base,
            app=replace(base.app, chdir=app_dir),
            runtime_dir=runtime_dir,
            watch=WatchSpec(
                paths=(app_dir,),
                debounce=DEBOUNCE,
                max_wait=2.0,
                reload=mode,
                preflight_timeout=CHECK_TIMEOUT,
            ),
        )
        self.machine, self.ctl, self.logs = make_machine(self.spec)
        self.machine.start(0.0)
        self.machine.stats(0.5, stats(11, 12))
        assert self.machine.state is State.RUNNING
        self.ctl.calls.clear()
        self.verdicts: list[tuple[str, tuple[int, ...], str]] = []
        self.gate = Gate(
            self.machine.live,
            self.machine,
            self.logs.append,
            lambda seqs: self.verdicts.append(("forwarded", seqs, "")),
            lambda seqs, why, kind, trigger: self.verdicts.append(("refused", seqs, why)),
        )
        self.codepush = CodePush(self.machine.live, self.gate, self.logs.append, lambda: None)
        self.watcher = FakeWatcher(app_dir)
        self.check = FakePreflight()
        self.codepush.watcher = self.watcher
        self.gate.preflight = self.check
        (app_dir / "blog.py").write_text("application = None\n")  # the tree is complete

    @property
    def m(self) -> Machine:
        return self.machine

    def state(self) -> State:
        """The machine's state now (a call: type checkers keep no narrowing across events)."""
        return self.machine.state

    def edit(self, now: float) -> None:
        """Change the code on disk (what a push does), so the tree is a new one."""
        code = self.spec.app.chdir / "blog.py"
        if code.parent.is_dir():
            code.write_text(f"application = None  # pushed at {now}\n")

    def change(self, now: float, *changes: Change) -> None:
        """The watcher saw `changes` (default: blog.py edited); the loop ticks."""
        self.edit(now)
        self.watcher.queued.extend(changes or (EDIT,))
        self.tick(now)

    def tick(self, now: float) -> None:
        """One turn of the loop: the code push, the gate, the machine's deadlines."""
        self.codepush.tick(now)
        self.gate.tick(now)
        self.m.tick(now)

    def deadline(self) -> Optional[float]:
        """When the loop would wake for these two next (None: not on its own)."""
        found = [d for d in (self.codepush.deadline(), self.gate.deadline()) if d is not None]
        return min(found, default=None)

    def finish_check(self, now: float, result: PreflightResult) -> None:
        """The import check ended (SIGCHLD woke the loop)."""
        self.check.result = result
        self.tick(now)


def test_a_change_starts_the_import_check_after_the_debounce_not_a_reload(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    rig.change(1.0)
    assert rig.deadline() == pytest.approx(1.0 + DEBOUNCE)
    rig.tick(1.0 + DEBOUNCE - 0.001)
    assert rig.check.started_at == []  # the push may not be complete yet
    rig.tick(1.0 + DEBOUNCE)
    assert rig.check.started_at == [1.0 + DEBOUNCE]
    assert rig.state() is State.RUNNING
    assert rig.ctl.calls == []  # no reload before the new code is known to import
    # The check imports through the same entry shim uWSGI loads.
    assert runtime_paths(rig.spec).entry.read_text().count("import_module('blog')") == 1


@pytest.mark.parametrize(("mode", "fifo"), [(ReloadMode.GRACEFUL, "pr"), (ReloadMode.CHAIN, "c")])
def test_a_passing_check_requests_the_reload(tmp_path: Path, mode: ReloadMode, fifo: str) -> None:
    rig = Rig(tmp_path, mode)
    rig.change(1.0)
    rig.tick(1.2)
    rig.tick(1.3)
    assert rig.ctl.calls == []  # still checking
    rig.finish_check(1.6, PASSED)
    assert rig.state() is State.RELOADING
    rig.tick(1.6 + PAUSE_SETTLE)  # a graceful reload pauses first: 'p', then 'r'
    assert rig.ctl.calls == ["RELOADING", *(f"fifo {c}" for c in fifo)]
    assert rig.m.reload is not None and rig.m.reload.reason == "blog.py changed"
    assert rig.gate.refused is None


def test_a_failing_check_keeps_serving_and_says_why(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    rig.change(1.0)
    rig.tick(1.2)
    rig.finish_check(1.5, FAILED)
    assert rig.state() is State.RUNNING
    assert rig.ctl.calls == []
    assert rig.gate.refused == "reload refused: SyntaxError in blog.py line 3: invalid syntax"
    assert "the running code keeps serving" in rig.logs[-1]
    assert "SyntaxError: invalid syntax" in rig.logs[-1]  # the check's output, for the journal
    rig.tick(5.0)
    assert rig.ctl.calls == [] and rig.check.started_at == [1.2]  # no retry of the same code

    # The fix is pushed: checked, reloaded, and the refusal is cleared.
    rig.change(10.0)
    rig.tick(10.2)
    rig.finish_check(10.5, PASSED)
    rig.tick(10.5 + PAUSE_SETTLE)
    assert rig.ctl.calls == ["RELOADING", "fifo p", "fifo r"]
    assert rig.gate.refused is None


def test_a_fix_pushed_while_a_failing_check_runs_is_checked_next(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    rig.change(1.0)
    rig.tick(1.2)
    rig.change(1.3)  # the fix, while the broken push is still being checked
    rig.finish_check(1.4, FAILED)
    assert rig.gate.refused is None  # the failure was of a tree that is gone
    assert "checking again" in rig.logs[-1]
    rig.tick(1.5)
    assert rig.check.started_at == [1.2, 1.5]
    rig.finish_check(1.8, PASSED)
    rig.tick(1.8 + PAUSE_SETTLE)
    assert rig.ctl.calls == ["RELOADING", "fifo p", "fifo r"]
    assert rig.gate.refused is None


def test_swap_mode_reloads_without_an_import_check(tmp_path: Path) -> None:
    """The candidate master is the check: it replaces the old one only once it serves."""
    rig = Rig(tmp_path, ReloadMode.SWAP)
    rig.change(1.0)
    rig.tick(1.0 + DEBOUNCE)
    assert rig.check.started_at == []
    assert rig.state() is State.RELOADING
    assert rig.ctl.calls == ["RELOADING", "spawn next"]


def test_changes_during_a_reload_wait_and_give_exactly_one_more(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    rig.change(1.0)
    rig.tick(1.2)
    rig.finish_check(1.5, PASSED)
    assert rig.state() is State.RELOADING
    for now in (1.6, 1.7, 2.5, 2.6):  # more of the push, and a second one
        rig.change(now, Change(f"/srv/blog/v{now}.py", "created", f"v{now}.py"))
    for now in (3.0, 4.0, 5.0):
        rig.tick(now)
    assert rig.check.started_at == [1.2]  # nothing checked while uWSGI reloads
    assert rig.ctl.calls.count("fifo r") == 1

    rig.m.stats(5.5, stats(21, 22))  # the reload completed
    assert rig.state() is State.RUNNING
    rig.tick(5.5)
    assert rig.check.started_at == [1.2, 5.5]
    rig.finish_check(5.8, PASSED)
    rig.tick(5.8 + PAUSE_SETTLE)
    assert rig.ctl.calls.count("fifo r") == 2
    assert rig.m.reload is not None
    assert rig.m.reload.reason == "v1.6.py and 3 other files changed"
    rig.m.stats(6.4, stats(31, 32))
    for now in (6.4, 7.0, 8.0):
        rig.tick(now)
    assert rig.ctl.calls.count("fifo r") == 2 and len(rig.check.started_at) == 2


def test_a_due_change_during_backoff_restarts_at_once(tmp_path: Path) -> None:
    rig = Rig(tmp_path, backoff=BackoffSpec(initial=20.0, jitter=0.0))
    rig.m.child_exited(1.0, "exit status 22")
    rig.m.tick(1.0)  # the first restart is immediate ...
    rig.m.child_exited(1.5, "exit status 22")  # ... the second one waits 20 s
    assert rig.state() is State.BACKOFF and rig.m.deadline == 21.5
    rig.ctl.calls.clear()
    rig.change(2.0)
    rig.tick(2.0 + DEBOUNCE)
    assert rig.state() is State.STARTING
    assert rig.ctl.calls == ["spawn"]
    assert rig.check.started_at == []  # uWSGI is down anyway: starting it is the check


def test_a_check_that_passes_while_uwsgi_is_down_is_not_lost(tmp_path: Path) -> None:
    rig = Rig(tmp_path, backoff=BackoffSpec(initial=20.0, jitter=0.0))
    rig.change(1.0)
    rig.tick(1.2)
    rig.m.child_exited(1.3, "killed by SIGKILL")  # crashed while the check ran
    rig.m.tick(1.3)
    rig.m.child_exited(1.4, "killed by SIGKILL")
    assert rig.state() is State.BACKOFF
    rig.ctl.calls.clear()
    rig.finish_check(1.5, PASSED)
    assert rig.state() is State.STARTING and rig.ctl.calls == ["spawn"]  # not 20 s later


def test_deadline_is_never_in_the_past_while_the_check_runs(tmp_path: Path) -> None:
    """The check's end comes with SIGCHLD: until its timeout there is nothing to do."""
    rig = Rig(tmp_path)
    rig.change(1.0)
    rig.tick(1.2)
    assert rig.check.running
    rig.change(1.3)  # more changes arrive while the check runs: due at 1.5
    for now in (1.3, 1.5, 1.6, 2.0, 10.0, 31.1):
        rig.tick(now)
        deadline = rig.deadline()
        assert deadline is not None and deadline > now
        if now >= 1.5:  # the later batch is settled and waits in the gate
            assert deadline == 1.2 + CHECK_TIMEOUT
    rig.finish_check(31.1, PASSED)
    # The pass speaks for the tree of 1.2, not of 1.3: the newer one is checked.
    assert rig.state() is State.RUNNING and rig.ctl.calls == []
    assert rig.check.started_at == [1.2, 31.1]
    assert rig.deadline() == 31.1 + CHECK_TIMEOUT


@pytest.mark.parametrize("busy", [State.RELOADING, State.STARTING, State.STOPPING])
def test_deadline_is_none_while_a_due_change_waits_for_the_machine(
    tmp_path: Path, busy: State
) -> None:
    rig = Rig(tmp_path)
    m = rig.m
    if busy is State.RELOADING:
        m.request_reload(1.0, ReloadMode.GRACEFUL, "reload requested")
    elif busy is State.STARTING:
        m.child_exited(1.0, "killed by SIGKILL")
        m.tick(1.0)
    else:
        m.request_stop(1.0)
    assert m.state is busy
    rig.change(1.1)
    for now in (1.1, 1.3, 1.5, 2.0, 5.0, 30.0):
        rig.tick(now)
        deadline = rig.deadline()
        assert deadline is None or deadline > now
    assert rig.check.started_at == []
    if busy is State.STOPPING:
        assert rig.gate.wanted is None  # nothing to reload: the service goes down
    else:
        assert rig.gate.wanted is not None  # kept for when the machine can act


def test_a_change_during_a_passing_check_is_checked_before_any_reload(tmp_path: Path) -> None:
    """A broken push landing while a good push is checked is never loaded unchecked."""
    rig = Rig(tmp_path)
    rig.change(1.0)
    rig.tick(1.2)  # the good push is being checked
    rig.change(1.5, Change("/srv/blog/broken.py", "created", "broken.py"))
    rig.finish_check(1.6, PASSED)
    assert rig.ctl.calls == []  # the pass is for a tree that is gone
    rig.tick(1.5 + DEBOUNCE - 0.01)
    assert rig.check.started_at == [1.2]  # waits for the tree to be quiet
    rig.tick(1.5 + DEBOUNCE)
    assert rig.check.started_at == [1.2, 1.5 + DEBOUNCE]
    rig.finish_check(2.0, FAILED)
    assert rig.ctl.calls == []
    assert rig.gate.refused is not None and "SyntaxError" in rig.gate.refused


@pytest.mark.parametrize("mode", [ReloadMode.GRACEFUL, ReloadMode.CHAIN, ReloadMode.RESTART])
def test_a_signal_reload_passes_the_same_check(tmp_path: Path, mode: ReloadMode) -> None:
    """`reload`, SIGHUP, SIGUSR1/2 and systemctl reload are gated like a push."""
    rig = Rig(tmp_path)
    rig.gate.request(1.0, mode, "SIGHUP", seq=7)
    assert rig.check.started_at == [1.0] and rig.ctl.calls == []
    rig.finish_check(1.4, FAILED)
    assert rig.ctl.calls == [] and rig.state() is State.RUNNING
    assert rig.verdicts == [("refused", (7,), "reload refused: " + FAILED.summary)]

    rig.edit(1.9)  # the fix
    rig.gate.request(2.0, mode, "SIGHUP", seq=8)
    rig.finish_check(2.3, PASSED)
    assert rig.verdicts[-1] == ("forwarded", (8,), "")
    assert {"RELOADING", "STOPPING"} & set(rig.ctl.calls)


def test_signal_reloads_during_a_reload_wait_and_coalesce(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    rig.m.request_reload(1.0, ReloadMode.GRACEFUL, "first")
    rig.gate.request(1.1, ReloadMode.GRACEFUL, "SIGUSR1", seq=1)
    rig.gate.request(1.2, ReloadMode.RESTART, "spec changed", seq=2)
    rig.gate.request(1.3, ReloadMode.GRACEFUL, "SIGUSR1", seq=3)
    assert rig.check.started_at == []
    rig.tick(1.0 + PAUSE_SETTLE)  # the first reload's 'r'
    rig.m.stats(2.0, stats(21, 22))
    rig.tick(2.0)
    assert rig.check.started_at == [2.0]
    rig.finish_check(2.2, PASSED)
    assert rig.verdicts == [("forwarded", (1, 2, 3), "")]
    assert rig.state() is State.STOPPING  # the restart covers the reloads


def test_a_missing_tree_waits_says_what_is_missing_and_loads_once_complete(
    tmp_path: Path,
) -> None:
    """`rm -rf app && git clone ...`: a deploy in progress, not a failure."""
    rig = Rig(tmp_path)
    app = rig.spec.app.chdir
    (app / "blog.py").unlink()
    app.rmdir()
    rig.gate.request(1.0, ReloadMode.GRACEFUL, "SIGHUP", seq=1)
    assert rig.check.started_at == [] and rig.ctl.calls == []
    assert rig.gate.waiting is not None and str(app) in rig.gate.waiting
    assert rig.verdicts == []  # still waiting: neither refused nor applied
    rig.tick(1.0 + TREE_POLL / 2)
    assert rig.check.started_at == []
    app.mkdir()
    (app / "blog.py").write_text("application = None\n")
    rig.tick(1.0 + TREE_POLL)
    assert rig.gate.waiting is None and rig.check.started_at == [1.0 + TREE_POLL]
    rig.finish_check(2.5, PASSED)
    rig.tick(2.5 + PAUSE_SETTLE)
    assert rig.ctl.calls == ["RELOADING", "fifo p", "fifo r"]


def test_a_reload_asked_for_during_a_restart_follows_it(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    rig.m.request_reload(1.0, ReloadMode.RESTART, "spec changed")
    assert rig.state() is State.STOPPING
    rig.gate.request(1.1, ReloadMode.GRACEFUL, "SIGUSR1", seq=4)
    assert rig.gate.wanted is not None and rig.verdicts == []  # not refused: it waits
    rig.m.child_exited(1.5, "exit status 0")  # the restart: uWSGI stopped, starts again
    rig.m.stats(2.0, stats(31, 32))
    assert rig.state() is State.RUNNING
    rig.tick(2.0)
    assert rig.check.started_at == [2.0]


def test_a_reload_asked_for_while_stopping_is_refused(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    rig.m.request_stop(1.0)
    rig.gate.request(1.1, ReloadMode.GRACEFUL, "SIGUSR1", seq=5)
    assert rig.verdicts == [("refused", (5,), "reload ignored: the service is stopping")]


def test_a_refused_tree_is_not_checked_again_until_it_changes(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    rig.change(1.0)
    rig.tick(1.2)
    rig.finish_check(1.5, FAILED)
    rig.gate.request(2.0, ReloadMode.GRACEFUL, "SIGHUP", seq=3)  # the same tree again
    assert rig.check.started_at == [1.2]  # no second check of it
    kind, seqs, why = rig.verdicts[-1]
    assert (kind, seqs) == ("refused", (3,)) and "already refused" in why and "SyntaxError" in why
    rig.change(3.0)  # a push: a new tree
    rig.tick(3.2)
    assert rig.check.started_at == [1.2, 3.2]


def test_a_swap_refused_by_the_health_check_quarantines_its_tree(tmp_path: Path) -> None:
    rig = Rig(tmp_path, ReloadMode.SWAP)
    rig.change(1.0)
    rig.tick(1.2)
    assert rig.state() is State.RELOADING
    rig.m.next_exited(2.0, "exit status 1", None)  # the candidate never served
    rig.tick(2.0)
    rig.gate.request(3.0, ReloadMode.SWAP, "SIGHUP", seq=4)
    assert rig.verdicts[-1][0] == "refused" and "already refused" in rig.verdicts[-1][2]
    assert rig.ctl.calls.count("spawn next") == 1
