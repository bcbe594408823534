"""The health check in the state machine: a fake controller and a number for a clock.

The loop runs each check; here the test plays the loop: it takes the check
the machine asks for (`probe_due`) and reports an outcome (`health_result`).
"""

from __future__ import annotations

from fakes import FakeController, make_checked_machine, make_health_spec, make_machine, stats

from supervisor.lifecycle.health import BAKE_PROBE, CURRENT, NEXT, PROBE_GAP, PROBE_RETRY
from supervisor.lifecycle.machine import Machine
from supervisor.lifecycle.states import State
from supervisor.spec.model import ReloadMode

OK = "GET / answered 200"
FAIL = "GET / answered 500: <title>500 Internal Server Error</title>"


def test_ready_at_start_waits_for_consecutive_passes() -> None:
    m, ctl, logs = make_machine(make_health_spec())
    m.start(0.0)
    m.stats(0.5, stats(11, 12))
    assert m.state is State.STARTING and "READY" not in ctl.calls
    assert m.probe_due(0.5) == CURRENT and m.probe_due(0.5) is None  # one at a time
    m.health_result(0.6, CURRENT, False, FAIL)
    assert m.state is State.STARTING and m.health.failure == FAIL
    assert m.next_deadline() == 0.6 + PROBE_RETRY
    assert m.probe_due(0.6 + PROBE_RETRY - 0.01) is None
    assert m.probe_due(0.6 + PROBE_RETRY) == CURRENT
    m.health_result(1.7, CURRENT, True, OK)
    assert m.state is State.STARTING  # one pass of the two
    assert m.probe_due(1.7 + PROBE_GAP) == CURRENT
    m.health_result(2.0, CURRENT, True, OK)
    assert m.state is State.RUNNING and ctl.calls[-1] == "READY"
    assert "health check passed" in logs[-1]


def _swapping() -> tuple[Machine, FakeController, list[str]]:
    m, ctl, logs = make_checked_machine()
    m.request_reload(1.0, ReloadMode.SWAP, "blog.py changed")
    assert ctl.calls == ["RELOADING", "spawn next"]
    return m, ctl, logs


def test_a_swap_candidate_takes_traffic_only_after_passing() -> None:
    m, ctl, logs = _swapping()
    m.next_stats(2.0, stats(21, 22))  # every candidate worker serves ...
    assert m.state is State.RELOADING and "promote" not in " ".join(ctl.calls)
    assert m.probe_due(2.0) == NEXT  # ... but answers nothing real yet
    m.health_result(2.1, NEXT, True, OK)
    assert m.probe_due(2.1 + PROBE_GAP) == NEXT
    m.health_result(2.4, NEXT, True, OK)
    assert ctl.calls[-1] == "release next"  # its workers may now take traffic
    m.next_stats(2.45, stats(21, 22))  # the held workers are still there
    assert m.state is State.RELOADING
    m.next_stats(2.5, stats(31, 32))  # fresh forks, on the shared sockets
    assert m.state is State.RUNNING and "promote next, pause old" in ctl.calls
    assert m.generation == 2


def test_a_candidate_that_fails_is_abandoned_and_says_why() -> None:
    m, ctl, logs = _swapping()
    m.next_stats(2.0, stats(21, 22))
    assert m.probe_due(2.0) == NEXT
    m.health_result(2.2, NEXT, False, FAIL)
    assert m.state is State.RUNNING and m.generation == 1
    assert "abort next" in ctl.calls and "release next" not in ctl.calls
    assert m.swap_failed == f"swap refused: health check failed: {FAIL}"
    # A late result for the abandoned candidate changes nothing.
    m.health_result(2.3, NEXT, True, OK)
    assert m.state is State.RUNNING and m.generation == 1


def test_a_graceful_reload_that_fails_the_check_is_reported_not_hidden() -> None:
    m, ctl, logs = make_checked_machine()
    m.request_reload(1.0, ReloadMode.GRACEFUL, "blog.py changed")
    m.tick(1.5)  # the 'r', once the pause settled
    m.stats(2.0, stats(21, 22))
    assert m.state is State.RELOADING and m.probe_due(2.0) == CURRENT
    m.health_result(2.1, CURRENT, False, FAIL)
    assert m.state is State.RUNNING and m.generation == 2  # applied: the old code is gone
    assert m.reload_unhealthy is not None
    assert "cannot roll back" in m.reload_unhealthy and FAIL in m.reload_unhealthy


def test_with_the_check_off_nothing_waits_for_it() -> None:
    m, ctl, logs = make_machine(make_health_spec(enabled=False))
    m.start(0.0)
    m.stats(0.1, stats(11, 12))
    assert m.state is State.RUNNING and m.probe_due(0.1) is None


def _baking() -> tuple[Machine, FakeController, list[str]]:
    """Swapped in at 2.5: the new master (workers 31, 32) bakes until 12.5."""
    m, ctl, logs = _swapping()
    m.next_stats(2.0, stats(21, 22))
    for now in (2.0, 2.25):
        assert m.probe_due(now) == NEXT
        m.health_result(now, NEXT, True, OK)
    m.next_stats(2.5, stats(31, 32))
    assert m.state is State.RUNNING and m.bake_until == 2.5 + 10.0
    ctl.calls.clear()
    return m, ctl, logs


def test_the_new_master_is_checked_through_the_bake_and_the_old_one_quits_after() -> None:
    m, ctl, logs = _baking()
    now = 2.5
    while now + BAKE_PROBE < 12.5:
        now += BAKE_PROBE
        assert m.probe_due(now) == CURRENT
        m.health_result(now, CURRENT, True, OK)
        m.stats(now, stats(31, 32))
        m.tick(now)
    assert ctl.calls == []
    m.tick(12.5)
    assert ctl.calls == ["end bake"] and m.bake_until is None and m.rollbacks == 0


def test_a_check_failing_during_the_bake_rolls_back() -> None:
    m, ctl, logs = _baking()
    assert m.probe_due(3.5) == CURRENT
    m.health_result(3.5, CURRENT, False, FAIL)
    assert ctl.calls == ["roll back"] and m.state is State.RUNNING
    assert m.rollbacks == 1 and m.rolled_back == f"rolled back: health check failed: {FAIL}"
    m.tick(13.0)
    assert "end bake" not in ctl.calls  # nothing left to bake


def test_a_worker_dying_during_the_bake_rolls_back() -> None:
    m, ctl, logs = _baking()
    m.stats(3.0, stats(31, 33))  # worker 32 died; uWSGI respawned it as 33
    assert ctl.calls == ["roll back"] and "respawned as 33" in (m.rolled_back or "")


def test_the_new_master_exiting_during_the_bake_rolls_back_instead_of_restarting() -> None:
    m, ctl, logs = _baking()
    m.child_exited(4.0, "killed by SIGSEGV")
    assert m.state is State.RUNNING and "roll back" in ctl.calls and "spawn" not in ctl.calls
    assert m.crashes == 0


def test_a_newer_reload_during_the_bake_lets_the_paused_master_go() -> None:
    m, ctl, logs = _baking()
    m.request_reload(5.0, ReloadMode.SWAP, "another push")
    assert ctl.calls[:2] == ["end bake", "RELOADING"]


def _running() -> tuple[Machine, FakeController, list[str]]:
    return make_checked_machine(interval=10.0, failures=3)


def test_a_running_master_is_checked_every_interval() -> None:
    m, ctl, logs = _running()
    assert m.probe_due(10.4) is None and m.probe_due(10.5) == CURRENT
    m.health_result(10.6, CURRENT, True, OK)
    assert m.probe_due(20.5) is None and m.probe_due(20.6) == CURRENT


def test_a_hung_app_is_replaced_after_enough_failures_with_every_worker_busy() -> None:
    m, ctl, logs = _running()
    hang = "GET /: no answer within 5s"
    now = 0.5
    for n in (1, 2):
        now += 10.0
        assert m.probe_due(now) == CURRENT
        m.stats(now, stats(11, 12, status="busy"))
        m.health_result(now + 5.0, CURRENT, False, hang)
        now += 5.0
        assert m.state is State.RUNNING and f"({n} of 3 in a row)" in logs[-1]
    now += 10.0
    assert m.probe_due(now) == CURRENT
    m.health_result(now + 5.0, CURRENT, False, hang)
    assert m.state is State.RELOADING and m.reload is not None
    assert m.reload.mode is ReloadMode.SWAP and m.reload.reason == f"hung: {hang}"
    assert m.hung == ((1, 11), (2, 12))  # whose stacks the loop logs
    assert "stuck: 1 (pid 11), 2 (pid 12)" in logs[-2]


def test_failing_checks_with_idle_workers_are_shown_not_acted_on() -> None:
    """The app answers, badly: a new master would run the same code."""
    m, ctl, logs = _running()
    now = 0.5
    for _ in range(5):
        now += 10.0
        m.probe_due(now)
        m.stats(now, stats(11, 12))
        m.health_result(now, CURRENT, False, FAIL)
    assert m.state is State.RUNNING and ctl.calls == [] and m.health.failure == FAIL
    m.probe_due(now + 10.0)
    m.health_result(now + 10.0, CURRENT, True, OK)
    assert m.health.failure is None and m.liveness_failures == 0


def test_a_hung_app_a_swap_cannot_help_is_restarted_next_time() -> None:
    m, ctl, logs = _running()
    hang = "GET /: no answer within 5s"

    def hang_for(start: float) -> float:
        now = start
        for _ in range(3):
            now += 10.0
            assert m.probe_due(now) == CURRENT
            m.stats(now, stats(11, 12, status="busy"))
            m.health_result(now, CURRENT, False, hang)
        return now

    now = hang_for(0.5)
    assert m.state is State.RELOADING and m.reload is not None
    assert m.reload.mode is ReloadMode.SWAP
    m.next_stats(now + 1.0, stats(21, 22))
    m.probe_due(now + 1.0)
    m.health_result(now + 6.0, NEXT, False, hang)  # the new master hangs too
    assert m.state is State.RUNNING and m.hang_swap_refused
    now = hang_for(now + 6.0)
    assert m.state is State.STOPPING  # the restart a swap could not give
