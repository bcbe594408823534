"""What people and systemd see: the STATUS line, the state file and announcements.

Snapshots are built by hand and the clock is a number: `now` is monotonic,
`wall` is what `time.time()` would say.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

from fakes import make_machine, make_spec, stats

from supervisor.lifecycle.effects import Announcement
from supervisor.lifecycle.samples import Stats, Worker
from supervisor.lifecycle.states import State
from supervisor.publish import REFRESH, Publisher
from supervisor.spec.model import ReloadMode
from supervisor.status import ReloadVerdict, Snapshot, read_state, state_doc, status_line
from supervisor.systemd.notify import Notifier

NOW = 500.0  # monotonic
WALL = 1_700_000_000.0
ERROR = "ModuleNotFoundError in blog.py line 1: No module named 'x'"


def worker(pid: int, requests: int = 0, serving: bool = True) -> Worker:
    return Worker(pid % 10, pid, serving, "idle", requests, 0, 0, 0, 1, 1 if serving else 0)


def sample(*workers: Worker) -> Stats:
    return Stats(pid=100, version="2.0.31", listen_queue=0, workers=workers)


BASE = Snapshot(
    name="blog",
    state=State.RUNNING,
    processes=2,
    generation=1,
    crashes=0,
    deadline=None,
    stats=sample(worker(11), worker(12)),
    reload_mode=None,
    reload_reason=None,
    old_pids=frozenset(),
    last_reload=None,
    last_exit=None,
    uwsgi_pid=100,
    watching="inotify",
    error=None,
    tail=(),
    refused=None,
    verdict=ReloadVerdict(seq=0, ok=True, message=""),
)


def snap(**changes: object) -> Snapshot:
    return replace(BASE, **changes)  # type: ignore[arg-type]


# -- status_line ---------------------------------------------------------------


def test_running_counts_workers_and_says_when_and_why_it_last_reloaded() -> None:
    s = snap(
        stats=sample(worker(11, requests=40), worker(12, requests=2)),
        generation=3,
        last_reload=(WALL - 30.0, "blog.py changed"),
    )
    assert status_line(s, NOW, WALL) == (
        "serving: 2/2 workers, generation 3, last reload 30 s ago (blog.py changed)"
    )
    s = replace(s, last_reload=(WALL - 600.0, "SIGHUP"))
    assert status_line(s, NOW, WALL).endswith("last reload 10 min ago (SIGHUP)")
    s = replace(s, last_reload=(WALL - 2 * 86400.0, "SIGHUP"))
    assert status_line(s, NOW, WALL).endswith("last reload 2.0 days ago (SIGHUP)")


def test_running_before_any_reload_and_with_the_wall_clock_stepped_back() -> None:
    assert status_line(snap(), NOW, WALL) == "serving: 2/2 workers, generation 1"
    s = snap(last_reload=(WALL + 50.0, "blog.py changed"))  # NTP stepped the clock back
    assert status_line(s, NOW, WALL).endswith("last reload 0 s ago (blog.py changed)")


def test_starting_counts_serving_workers() -> None:
    s = snap(state=State.STARTING, processes=4, stats=sample(worker(11), worker(12, serving=False)))
    assert status_line(s, NOW, WALL) == "starting: 1/4 workers serving"
    assert status_line(snap(state=State.STARTING, stats=None), NOW, WALL) == (
        "starting: 0/2 workers serving"
    )


def test_reloading_counts_only_fresh_serving_workers() -> None:
    s = snap(
        state=State.RELOADING,
        processes=3,
        reload_mode="graceful",
        reload_reason="blog.py changed",
        old_pids=frozenset({11, 12}),
        # pid 11 still serves old code; 21 serves new code; 22 is still importing.
        stats=sample(worker(11), worker(21), worker(22, serving=False)),
    )
    assert status_line(s, NOW, WALL) == (
        "reloading (graceful): 1/3 workers on new code (blog.py changed)"
    )


def test_backoff_says_when_the_next_try_is_and_why_it_failed() -> None:
    s = snap(state=State.BACKOFF, crashes=2, deadline=NOW + 2.5, stats=None, error=ERROR)
    assert status_line(s, NOW, WALL) == f"backoff: crash 2, retrying in 2.5 s: {ERROR}"
    late = status_line(replace(s, error=None), NOW + 9.0, WALL)
    assert late == "backoff: crash 2, retrying in 0.0 s"  # never a negative wait


def test_fatal_counts_restarts_as_the_machine_does() -> None:
    m, _, logs = make_machine(make_spec(max_attempts=3))
    m.start(0.0)
    now = 0.0
    while m.state is not State.FATAL:
        now += 100.0
        m.child_exited(now, "exit status 22")
        m.tick(now + 99.0)
    assert "gave up after 3 restarts" in logs[-1]
    s = snap(state=State.FATAL, crashes=m.crashes, stats=None, error=ERROR)
    assert status_line(s, NOW, WALL) == f"gave up after 3 restarts: {ERROR}"


def test_stopping_and_stopped() -> None:
    assert status_line(snap(state=State.STOPPING), NOW, WALL) == (
        "stopping: waiting for uWSGI to finish in-flight requests"
    )
    assert status_line(snap(state=State.STOPPED, stats=None), NOW, WALL) == "stopped"


def test_a_refused_reload_is_appended_while_the_old_code_serves() -> None:
    refused = "reload refused: SyntaxError in blog.py line 3: invalid syntax"
    line = status_line(snap(refused=refused), NOW, WALL)
    assert line == f"serving: 2/2 workers, generation 1; {refused}"
    # Down, the error says it all: the refusal of an earlier push is old news.
    down = snap(state=State.BACKOFF, crashes=2, deadline=NOW, error=ERROR, refused=refused)
    assert refused not in status_line(down, NOW, WALL)


# -- state_doc -------------------------------------------------------------------


def test_state_doc_while_running_hides_old_errors_and_tail() -> None:
    s = snap(
        last_reload=(WALL - 5.0, "blog.py changed"),
        error=ERROR,  # from a crash before the restart that now serves
        tail=("old", "lines"),
        verdict=ReloadVerdict(seq=4, ok=True, message="reloaded: generation 1"),
    )
    doc = state_doc(s, "the line", NOW, pid=4242)
    assert doc["state"] == "running" and doc["status"] == "the line"
    assert doc["supervisor_pid"] == 4242 and doc["uwsgi_pid"] == 100
    assert doc["last_error"] is None and doc["uwsgi_tail"] == []
    assert doc["next_try_in"] is None
    assert doc["last_reload"] == {"at": WALL - 5.0, "reason": "blog.py changed"}
    assert doc["reload_done"] == {"seq": 4, "ok": True, "message": "reloaded: generation 1"}


def test_state_doc_in_backoff_explains_the_failure(tmp_path: Path) -> None:
    tail = tuple(f"line {i}" for i in range(15))
    s = snap(
        state=State.BACKOFF,
        crashes=2,
        deadline=NOW + 2.5,
        error=ERROR,
        tail=tail,
        last_exit="exit status 22 (no app loaded)",
        uwsgi_pid=None,
    )
    doc = state_doc(s, status_line(s, NOW, WALL), NOW, pid=1)
    assert doc["next_try_in"] == 2.5
    assert doc["last_error"] == ERROR
    assert doc["last_exit"] == "exit status 22 (no app loaded)"
    assert doc["uwsgi_tail"] == list(tail[-10:])  # the last ten lines
    # What `status` reads back is what was written.
    path = tmp_path / "state.json"
    path.write_text(json.dumps(doc))
    assert read_state(path) == doc
    path.write_text('{"state": "runn')  # a torn or foreign file reads as none
    assert read_state(path) is None


# -- Publisher -------------------------------------------------------------------


class FakeNotifier(Notifier):
    """Records sd_notify messages as "KIND: status" strings."""

    def __init__(self) -> None:
        self.pending: list[bytes] = []
        self.sent: list[str] = []

    def ready(self, status: str) -> None:
        self.sent.append(f"READY: {status}")

    def reloading(self, status: str) -> None:
        self.sent.append(f"RELOADING: {status}")

    def stopping(self, status: str) -> None:
        self.sent.append(f"STOPPING: {status}")

    def status(self, status: str) -> None:
        self.sent.append(f"STATUS: {status}")


def publisher(state_path: Path) -> tuple[Publisher, FakeNotifier, list[str]]:
    notifier = FakeNotifier()
    errors: list[str] = []
    return (
        Publisher(notifier, lambda: state_path, errors.append, wall=lambda: WALL),
        notifier,
        errors,
    )


RELOADING = snap(
    state=State.RELOADING,
    reload_mode="graceful",
    reload_reason="blog.py changed",
    old_pids=frozenset({11, 12}),
)


def test_announcements_go_out_in_order_and_a_repeated_reloading_once(tmp_path: Path) -> None:
    pub, notifier, _ = publisher(tmp_path / "state.json")
    pub.announce([Announcement.READY], snap(), NOW)
    pub.announce([Announcement.RELOADING], RELOADING, NOW + 1)
    # The reload failed and became a restart: still the same reload for systemd.
    pub.announce([Announcement.RELOADING], snap(state=State.STOPPING), NOW + 2)
    pub.announce([Announcement.READY], snap(generation=2), NOW + 3)
    pub.announce([Announcement.RELOADING, Announcement.STOPPING], RELOADING, NOW + 4)
    assert notifier.sent == [
        "READY: serving: 2/2 workers, generation 1",
        "RELOADING: reloading (graceful): 0/2 workers on new code (blog.py changed)",
        "READY: serving: 2/2 workers, generation 2",
        "RELOADING: reloading (graceful): 0/2 workers on new code (blog.py changed)",
        "STOPPING: reloading (graceful): 0/2 workers on new code (blog.py changed)",
    ]


def test_state_file_follows_milestones_at_once_and_is_not_rewritten_idle(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    pub, notifier, errors = publisher(path)
    pub.publish(snap(), NOW)
    assert read_state(path) is not None

    path.unlink()
    pub.publish(snap(), NOW + 5 * REFRESH)
    assert not path.exists()  # nothing changed: nobody watching the file is woken

    for change in (
        {"state": State.RELOADING, "reload_mode": "graceful", "reload_reason": "x"},
        {"generation": 2},
        {"verdict": ReloadVerdict(seq=1, ok=True, message="reloaded: generation 2")},
        {"refused": "reload refused: SyntaxError in blog.py line 3: invalid syntax"},
    ):
        path.unlink(missing_ok=True)
        pub.publish(snap(**change), NOW + 5 * REFRESH + 0.001)  # well within REFRESH
        doc = read_state(path)
        assert doc is not None, change
    assert errors == []


def test_the_state_file_already_says_what_a_milestone_announces(tmp_path: Path) -> None:
    """`systemctl start` returns on READY; a `status` right after reads the
    state file. It must not find the state from before READY."""
    path = tmp_path / "state.json"
    pub, notifier, _ = publisher(path)
    seen: list[tuple[str, object, object]] = []

    def look(kind: str) -> None:
        doc = read_state(path)
        seen.append((kind, doc and doc["state"], doc and doc["generation"]))

    notifier.ready = lambda status: look("READY")  # type: ignore[method-assign]
    notifier.reloading = lambda status: look("RELOADING")  # type: ignore[method-assign]
    pub.turn([], snap(state=State.STARTING, generation=0, stats=None), NOW)
    pub.turn([Announcement.READY], snap(generation=1), NOW + 0.01)
    pub.turn([Announcement.RELOADING], RELOADING, NOW + 0.02)
    pub.turn([Announcement.READY], snap(generation=2), NOW + 0.03)
    assert seen == [
        ("READY", "running", 1),
        ("RELOADING", "reloading", 1),
        ("READY", "running", 2),
    ]


def test_mere_figures_wait_for_the_refresh_interval(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    pub, notifier, _ = publisher(path)
    pub.publish(snap(), NOW)
    busy = snap(stats=sample(worker(11), worker(12, serving=False)))  # a worker respawning
    pub.publish(busy, NOW + REFRESH / 2)
    doc = read_state(path)
    assert doc is not None and "2/2 workers" in doc["status"]
    pub.publish(busy, NOW + REFRESH + 0.001)
    doc = read_state(path)
    assert doc is not None and "1/2 workers" in doc["status"]
    assert notifier.sent[-1] == "STATUS: serving: 1/2 workers, generation 1"


def test_requests_alone_change_neither_status_nor_state_file(tmp_path: Path) -> None:
    """An idle app's health checks add requests: that must not rewrite the
    state file or resend STATUS= on every look."""
    path = tmp_path / "state.json"
    pub, notifier, _ = publisher(path)
    pub.publish(snap(), NOW)
    sent, written = set(notifier.sent), path.stat().st_mtime_ns
    pub.publish(snap(stats=sample(worker(11, requests=7), worker(12))), NOW + 10 * REFRESH)
    assert set(notifier.sent) == sent  # the same line (the notifier drops repeats)
    assert path.stat().st_mtime_ns == written


def test_a_state_file_that_cannot_be_written_is_logged_once(tmp_path: Path) -> None:
    path = tmp_path / "gone" / "state.json"
    pub, notifier, errors = publisher(path)
    for i in range(5):
        pub.publish(snap(generation=i + 1), NOW + i)
    assert len(errors) == 1
    assert errors[0].startswith("cannot write state file (status shows stale data):")
    assert len(notifier.sent) == 5  # STATUS= still goes out

    path.parent.mkdir()
    pub.publish(snap(generation=9), NOW + 10)
    doc = read_state(path)
    assert doc is not None and doc["generation"] == 9
    path.parent.rename(tmp_path / "moved")
    pub.publish(snap(generation=10), NOW + 11)
    assert len(errors) == 2  # a new failure after a recovery is news again


# -- announcements from the machine ----------------------------------------------


def test_a_stop_during_a_restart_announces_stopping(tmp_path: Path) -> None:
    m, ctl, _ = make_machine()
    m.start(0.0)
    m.stats(0.5, stats(11, 12))
    ctl.calls.clear()
    m.announcements.clear()  # READY: taken by the publisher already
    m.request_reload(1.0, ReloadMode.RESTART, "spec changed (uWSGI command line)")
    assert m.state is State.STOPPING
    assert ctl.calls == ["abort next", "RELOADING", "fifo p"]  # a reload to systemd
    m.request_stop(2.0)
    assert ctl.calls == ["abort next", "RELOADING", "fifo p", "STOPPING"]
    m.child_exited(3.0, "exit status 0")
    assert m.exit_code == 0 and "spawn" not in ctl.calls  # stopped, not restarted

    pub, notifier, _ = publisher(tmp_path / "state.json")
    pub.announce(m.announcements, snap(state=State.STOPPING), 3.0)
    assert [line.split(":")[0] for line in notifier.sent] == ["RELOADING", "STOPPING"]


def test_a_reload_queued_during_a_reload_does_not_survive_a_crash() -> None:
    m, ctl, _ = make_machine()
    m.start(0.0)
    m.stats(0.5, stats(11, 12))
    ctl.calls.clear()
    m.request_reload(1.0, ReloadMode.GRACEFUL, "blog.py changed")
    m.request_reload(1.1, ReloadMode.GRACEFUL, "views.py changed")
    assert m.pending is not None
    m.child_exited(1.2, "killed by SIGKILL")
    assert m.pending is None and m.reload is None
    m.tick(1.2)  # the first restart is immediate: it loads the newest code anyway
    m.stats(1.5, stats(21, 22))
    assert m.state is State.RUNNING
    m.tick(2.0)
    m.stats(2.0, stats(21, 22))
    assert ctl.calls.count("spawn") == 1
    # The first reload's pause, cut short by the crash: no 'r' after the restart.
    assert ctl.calls.count("fifo p") == 1 and "fifo r" not in ctl.calls
    assert ctl.calls[-1] == "READY"
