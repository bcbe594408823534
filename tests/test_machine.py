"""The state machine and backoff against a fake controller and a number for a clock."""

from __future__ import annotations

import pytest
from fakes import FakeController, make_machine, make_spec, stats

from supervisor.exitcodes import Exit
from supervisor.lifecycle.backoff import restart_delay
from supervisor.lifecycle.machine import PAUSE_SETTLE, Machine
from supervisor.lifecycle.states import (
    TRANSITIONS,
    IllegalTransition,
    State,
    StopIntent,
    check_transition,
)
from supervisor.spec.model import BackoffSpec, ReloadMode, Spec


def running(spec: Spec | None = None) -> tuple[Machine, FakeController, list[str]]:
    m, ctl, logs = make_machine(spec)
    m.start(0.0)
    m.stats(0.5, stats(11, 12))
    assert m.state is State.RUNNING
    ctl.calls.clear()
    return m, ctl, logs


def test_ready_only_when_every_worker_serves() -> None:
    m, ctl, logs = make_machine()
    m.start(0.0)
    m.stats(0.1, stats(11, 12, serving=False))
    assert m.state is State.STARTING and "READY" not in ctl.calls
    m.stats(0.2, None)
    assert m.state is State.STARTING
    m.stats(0.3, stats(11, 12))
    assert m.state is State.RUNNING
    assert ctl.calls == ["spawn", "READY"]
    assert logs[-1] == "starting -> running (2 workers serving)"


def test_backoff_schedule_with_fake_clock() -> None:
    """First restart immediate, then initial * factor**n capped at max (jitter 0 here)."""
    spec = make_spec(backoff=BackoffSpec(initial=0.1, max=1.0, factor=2.0, jitter=0.0))
    m, ctl, logs = running(spec)
    now = 1.0
    delays = []
    for _ in range(7):
        m.child_exited(now, "exit status 22")
        assert m.state is State.BACKOFF
        assert m.deadline is not None
        delays.append(round(m.deadline - now, 6))
        now = m.deadline
        m.tick(now - 0.001)
        assert m.state is State.BACKOFF  # not a moment early
        m.tick(now)
        assert m.state is State.STARTING
    assert delays == [0.0, 0.1, 0.2, 0.4, 0.8, 1.0, 1.0]
    assert ctl.calls.count("spawn") == 7
    assert ctl.calls.count("reap") == 7


def test_backoff_still_retries_after_thousands_of_crashes() -> None:
    """A host nobody watches must still be retrying in the morning: the delay's
    arithmetic overflowed after about 1,025 crashes in a row (OverflowError)."""
    policy = BackoffSpec(initial=0.1, max=30.0, factor=2.0, jitter=0.1)
    for attempt in (1_025, 1_100, 100_000):
        assert 27.0 <= restart_delay(attempt, policy, rand=lambda: 0.5) <= 30.0
    m, ctl, _ = running(make_spec(backoff=policy))
    now = 1.0
    for _ in range(1_200):
        m.child_exited(now, "exit status 22")
        now = m.deadline or now
        m.tick(now)
    assert m.state is State.STARTING and m.crashes == 1_200


def test_jitter_spreads_delays_within_bounds() -> None:
    policy = BackoffSpec(initial=1.0, max=30.0, factor=2.0, jitter=0.1)
    assert restart_delay(3, policy, rand=lambda: 0.0) == pytest.approx(1.8)
    assert restart_delay(3, policy, rand=lambda: 1.0) == pytest.approx(2.2)
    assert restart_delay(1, policy, rand=lambda: 1.0) == 0.0
    assert restart_delay(50, policy, rand=lambda: 1.0) == 30.0


def test_crash_count_resets_after_healthy_running() -> None:
    spec = make_spec(reset_after=60.0, backoff=BackoffSpec(jitter=0.0))
    m, _, _ = running(spec)
    m.child_exited(1.0, "killed by SIGKILL")
    m.tick(1.0)
    m.stats(1.5, stats(21, 22))
    m.child_exited(2.0, "killed by SIGKILL")
    assert m.crashes == 2
    m.tick(m.deadline or 0)
    m.stats(3.0, stats(31, 32))
    m.stats(70.0, stats(31, 32))  # healthy for reset_after
    m.child_exited(71.0, "killed by SIGKILL")
    assert m.crashes == 1 and m.deadline == 71.0


def test_gives_up_after_max_attempts_and_exits_nonzero() -> None:
    m, ctl, logs = running(make_spec(max_attempts=2))
    for t in (1.0, 2.0):
        m.child_exited(t, "exit status 22")
        m.tick(m.deadline or t)
    m.child_exited(3.0, "exit status 22")
    assert m.state is State.FATAL
    assert m.exit_code == Exit.UNAVAILABLE
    assert not m.watchdog_ok(3.0, 5.0)


def test_graceful_stop_pauses_then_escalates_q_then_sigint_then_sigkill() -> None:
    m, ctl, logs = running()
    m.request_stop(10.0)
    # Paused first, so no worker quits holding a connection it accepted.
    assert ctl.calls == ["abort next", "STOPPING", "fifo p"]
    assert m.next_deadline() == 10.0 + PAUSE_SETTLE
    m.tick(10.0 + PAUSE_SETTLE - 0.01)
    assert ctl.calls == ["abort next", "STOPPING", "fifo p"]
    m.tick(10.0 + PAUSE_SETTLE)
    assert ctl.calls == ["abort next", "STOPPING", "fifo p", "fifo q"]
    m.tick(10.0 + m.spec.stop_timeout - 0.01)
    assert ctl.calls[-1] == "fifo q"
    m.tick(10.0 + m.spec.stop_timeout)
    assert ctl.calls[-1] == "signal SIGINT"
    m.tick(10.0 + m.spec.stop_timeout + 5.0)
    assert ctl.calls[-1] == "kill"
    m.child_exited(46.0, "killed by SIGKILL")
    assert m.state is State.STOPPED and m.exit_code == Exit.OK
    assert "signal SIGTERM" not in ctl.calls  # SIGTERM is a brutal reload on uWSGI 2.0


def test_a_master_that_exits_while_paused_gets_no_q() -> None:
    m, ctl, logs = running()
    m.request_stop(10.0)
    m.child_exited(10.2, "exit status 0")
    m.tick(10.0 + PAUSE_SETTLE)
    assert "fifo q" not in ctl.calls and m.state is State.STOPPED


def test_fifo_without_reader_is_retried() -> None:
    m, ctl, logs = running()
    ctl.fifo_ok = False
    m.request_stop(1.0)
    assert m.fifo_due == "p"
    deadline = m.next_deadline()
    assert deadline is not None and deadline < 1.1
    ctl.fifo_ok = True
    m.tick(deadline)
    assert ctl.calls[-1] == "fifo p" and m.fifo_due is None
    # A 'p' still undelivered when the pause should have settled becomes the 'q'.
    m2, ctl2, _ = running()
    ctl2.fifo_ok = False
    m2.request_stop(1.0)
    m2.tick(1.0 + PAUSE_SETTLE - 0.01)
    ctl2.fifo_ok = True
    m2.tick(1.0 + PAUSE_SETTLE)
    assert ctl2.calls[-1] == "fifo q" and "fifo p" not in ctl2.calls and m2.fifo_due is None


def test_reload_completes_only_when_every_worker_is_new() -> None:
    m, ctl, logs = running()
    m.request_reload(5.0, ReloadMode.GRACEFUL, "blog.py changed")
    assert m.state is State.RELOADING
    assert ctl.calls == ["RELOADING", "fifo p"]  # paused first, as a stop: see PAUSE_SETTLE
    m.tick(5.0 + PAUSE_SETTLE)
    assert ctl.calls == ["RELOADING", "fifo p", "fifo r"]
    m.stats(5.6, stats(11, 41))  # one old worker still serving
    assert m.state is State.RELOADING
    m.stats(5.7, stats(41, 42, serving=False))  # new, app not loaded yet
    assert m.state is State.RELOADING
    m.stats(5.8, stats(41, 42))
    assert m.state is State.RUNNING
    assert ctl.calls[-1] == "READY"
    assert m.generation == 2 and m.last_reload == (5.8, "blog.py changed")


def test_a_graceful_reload_is_done_only_after_its_r() -> None:
    """Workers respawned during the pause (max-requests, a crash) are new, but
    they run the old code: only the 'r' loads the new."""
    m, ctl, logs = running()
    m.request_reload(5.0, ReloadMode.GRACEFUL, "blog.py changed")
    m.stats(5.2, stats(41, 42))
    assert m.state is State.RELOADING and m.generation == 1
    # A 'p' still undelivered when the pause should have settled becomes the 'r'.
    m2, ctl2, _ = running()
    ctl2.fifo_ok = False
    m2.request_reload(1.0, ReloadMode.GRACEFUL, "x")
    ctl2.fifo_ok = True
    m2.tick(1.0 + PAUSE_SETTLE)
    assert ctl2.calls == ["RELOADING", "fifo p (no reader)", "fifo r"] and m2.fifo_due is None


def test_a_stop_during_a_graceful_reloads_pause_sends_no_r() -> None:
    m, ctl, logs = running()
    m.request_reload(5.0, ReloadMode.GRACEFUL, "blog.py changed")
    m.request_stop(5.2)
    m.tick(5.2 + PAUSE_SETTLE)
    assert ctl.calls == ["RELOADING", "fifo p", "abort next", "STOPPING", "fifo p", "fifo q"]


def test_chain_reload_uses_c() -> None:
    m, ctl, logs = running()
    m.request_reload(1.0, ReloadMode.CHAIN, "x")
    assert ctl.calls == ["RELOADING", "fifo c"]


def test_reloads_during_a_reload_coalesce_into_exactly_one_more() -> None:
    m, ctl, logs = running()
    m.request_reload(1.0, ReloadMode.GRACEFUL, "a.py changed")
    for name in ("b", "c", "d"):
        m.request_reload(1.1, ReloadMode.GRACEFUL, f"{name}.py changed")
    m.tick(1.0 + PAUSE_SETTLE)
    m.stats(1.6, stats(41, 42))
    assert m.state is State.RELOADING  # the queued one started at once
    assert m.reload is not None and m.reload.reason == "d.py changed"
    m.tick(1.6 + PAUSE_SETTLE)
    m.stats(2.2, stats(51, 52))
    assert m.state is State.RUNNING
    assert ctl.calls.count("fifo r") == 2


def test_reload_deadline_falls_back_to_full_restart() -> None:
    m, ctl, logs = running()
    m.request_reload(1.0, ReloadMode.CHAIN, "broken.py changed")
    m.tick(1.0 + m.spec.reload_timeout)
    assert m.state is State.STOPPING and m.stop_intent is StopIntent.RESTART
    assert any("falling back to a full restart" in line for line in logs)
    m.child_exited(2.0 + m.spec.reload_timeout, "exit status 0")
    assert m.state is State.STARTING and ctl.calls[-1] == "spawn"
    assert "STOPPING" not in ctl.calls  # a restart is not a service stop


def test_code_change_during_backoff_tries_at_once() -> None:
    m, ctl, logs = running()
    for t in (1.0, 1.0, 1.0):
        m.child_exited(t, "exit status 22")
        if m.state is State.BACKOFF and m.crashes < 3:
            m.tick(m.deadline or t)
    assert m.state is State.BACKOFF and (m.deadline or 0) > 1.0
    m.request_reload(1.05, ReloadMode.GRACEFUL, "blog.py changed")
    assert m.state is State.STARTING


def test_start_timeout_kills_and_counts_as_crash() -> None:
    m, ctl, _ = make_machine()
    m.start(0.0)
    m.tick(m.spec.start_timeout)
    assert ctl.calls[-1] == "kill"
    m.child_exited(m.spec.start_timeout + 0.1, "killed by SIGKILL")
    assert m.state is State.BACKOFF and m.crashes == 1


def test_watchdog_only_while_stats_answer() -> None:
    m, _, _ = running()
    assert m.watchdog_ok(1.0, stale_after=3.0)
    assert not m.watchdog_ok(4.0, stale_after=3.0)  # master hung: no stats since 0.5
    m.stats(4.0, stats(11, 12))
    assert m.watchdog_ok(4.5, stale_after=3.0)


def test_an_illegal_transition_is_refused() -> None:
    with pytest.raises(IllegalTransition):
        check_transition(State.STOPPED, State.RUNNING)
    m, _, _ = make_machine()
    m.start(0.0)
    with pytest.raises(IllegalTransition):  # a second start while one is under way
        m.start(0.1)


def _taken(logs: list[str]) -> set[tuple[State, State]]:
    pairs = set()
    for line in logs:
        head = line.split(" (", 1)[0]
        if " -> " in head:
            old, new = head.split(" -> ")
            pairs.add((State(old), State(new)))
    return pairs


def test_every_transition_in_the_table_is_one_the_machine_takes() -> None:
    """The table holds no dead entries: each edge is taken by some scenario."""
    taken: set[tuple[State, State]] = set()
    # start, reload, stop
    m, ctl, logs = running()
    m.request_reload(1.0, ReloadMode.GRACEFUL, "x")
    m.tick(1.0 + PAUSE_SETTLE)
    m.stats(1.55, stats(41, 42))  # RELOADING -> RUNNING
    m.request_stop(1.6)
    m.child_exited(1.7, "exit status 0")
    taken |= _taken(logs)
    # crashes in every up state; a restart; stop during start and in backoff
    m, ctl, logs = running(make_spec(max_attempts=1, reset_after=60.0))
    m.request_reload(1.0, ReloadMode.GRACEFUL, "x")
    m.child_exited(1.1, "killed by SIGKILL")  # RELOADING -> BACKOFF
    m.tick(m.deadline or 1.1)  # BACKOFF -> STARTING
    m.child_exited(1.2, "exit status 22")  # STARTING -> FATAL (2 > 1)
    taken |= _taken(logs)
    for state_up in ("running", "reloading"):
        m, ctl, logs = running(make_spec(max_attempts=1, reset_after=60.0))
        m.child_exited(1.0, "killed by SIGKILL")  # RUNNING -> BACKOFF
        m.tick(m.deadline or 1.0)
        m.stats(1.1, stats(21, 22))
        if state_up == "reloading":
            m.request_reload(1.2, ReloadMode.GRACEFUL, "x")
        m.child_exited(1.3, "killed by SIGKILL")  # RUNNING/RELOADING -> FATAL
        taken |= _taken(logs)
    m, ctl, logs = make_machine()
    m.start(0.0)
    m.child_exited(0.1, "exit status 22")  # STARTING -> BACKOFF
    m.request_stop(0.2)  # BACKOFF -> STOPPED
    taken |= _taken(logs)
    m, ctl, logs = make_machine()
    m.start(0.0)
    m.request_stop(0.1)  # STARTING -> STOPPING
    taken |= _taken(logs)
    m, ctl, logs = running()
    m.request_reload(1.0, ReloadMode.RESTART, "spec changed")
    m.child_exited(1.1, "exit status 0")  # STOPPING -> STARTING
    m.request_reload(1.2, ReloadMode.GRACEFUL, "x")
    m.tick(1.2 + PAUSE_SETTLE)
    m.stats(1.75, stats(31, 32))
    m.request_reload(1.8, ReloadMode.GRACEFUL, "y")
    m.request_stop(1.9)  # RELOADING -> STOPPING
    taken |= _taken(logs)
    table = {(old, new) for old, news in TRANSITIONS.items() for new in news}
    assert taken == table, f"never taken: {table - taken}; not in the table: {taken - table}"


def test_swap_promotes_only_a_fully_serving_candidate() -> None:
    m, ctl, logs = running()
    m.request_reload(1.0, ReloadMode.SWAP, "blog.py changed")
    assert ctl.calls == ["RELOADING", "spawn next"]
    m.next_stats(1.2, stats(51, 52, serving=False))
    assert m.state is State.RELOADING
    m.next_stats(1.4, stats(51, 52))
    assert m.state is State.RUNNING and ctl.calls[-2:] == ["promote next", "READY"]
    assert m.generation == 2


def test_swap_candidate_that_dies_never_replaces_the_old_master() -> None:
    m, ctl, logs = running()
    m.request_reload(1.0, ReloadMode.SWAP, "broken push")
    m.next_exited(1.5, "exit status 22 (no app loaded)", "SyntaxError: invalid syntax")
    assert m.state is State.RUNNING and m.generation == 1
    assert ctl.calls[-2:] == ["abort next", "READY"]
    assert m.swap_failed is not None and "SyntaxError" in m.swap_failed


def test_swap_deadline_keeps_the_old_master() -> None:
    m, ctl, logs = running()
    m.request_reload(1.0, ReloadMode.SWAP, "slow start")
    m.tick(1.0 + m.spec.reload_timeout)
    assert m.state is State.RUNNING and "abort next" in ctl.calls
    assert m.swap_failed is not None and "did not serve within" in m.swap_failed
