"""The health check in the state machine: a fake controller and a number for a clock.

The loop runs each check; here the test plays the loop: it takes the check
the machine asks for (`probe_due`) and reports an outcome (`health_result`).
"""

from __future__ import annotations

from fakes import FakeController, make_health_spec, make_machine, stats

from supervisor.lifecycle.health import CURRENT, NEXT, PROBE_GAP, PROBE_RETRY
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
    m, ctl, logs = make_machine(make_health_spec())
    m.start(0.0)
    m.stats(0.1, stats(11, 12))
    for now in (0.2, 0.5):
        m.probe_due(now)
        m.health_result(now, CURRENT, True, OK)
    assert m.state is State.RUNNING
    ctl.calls.clear()
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
    assert m.state is State.RUNNING and "promote next" in ctl.calls
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
    m, ctl, logs = make_machine(make_health_spec())
    m.start(0.0)
    m.stats(0.1, stats(11, 12))
    for now in (0.2, 0.5):
        m.probe_due(now)
        m.health_result(now, CURRENT, True, OK)
    m.request_reload(1.0, ReloadMode.GRACEFUL, "blog.py changed")
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
