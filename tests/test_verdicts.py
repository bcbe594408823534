"""The verdict `reload --wait` and `status --json` give for each signalled reload
(the real Machine on a fake controller, a number for a clock)."""

from __future__ import annotations

from fakes import FakeController, make_checked_machine, stats

from supervisor.lifecycle.health import CURRENT, NEXT
from supervisor.lifecycle.machine import Machine
from supervisor.lifecycle.states import State
from supervisor.spec.model import ReloadMode
from supervisor.verdicts import Verdicts

OK = "GET / answered 200"


def _running_with_health() -> tuple[Machine, FakeController]:
    m, ctl, _ = make_checked_machine()
    return m, ctl


def _asked(v: Verdicts, m: Machine, mode: ReloadMode, now: float) -> int:
    seq = v.next_seq()
    v.forwarded((seq,), m.generation, m.rollbacks)
    m.request_reload(now, mode, "SIGHUP")
    return seq


def test_a_swap_is_applied_only_after_its_bake() -> None:
    m, ctl = _running_with_health()
    v = Verdicts()
    seq = _asked(v, m, ReloadMode.SWAP, 1.0)
    m.next_stats(2.0, stats(21, 22))
    for now in (2.0, 2.25):
        m.probe_due(now)
        m.health_result(now, NEXT, True, OK)
    m.next_stats(2.5, stats(31, 32))
    assert m.state is State.RUNNING
    v.settle(m, lambda: None)
    assert v.current["seq"] == 0  # swapped in, but still baking: no verdict yet
    m.tick(12.5)
    v.settle(m, lambda: None)
    assert v.current["seq"] == seq and v.current["ok"] and v.current["kind"] == "applied"
    assert v.current["decided_at"] >= v.current["asked_at"]


def test_a_rollback_is_a_failed_verdict() -> None:
    m, ctl = _running_with_health()
    v = Verdicts()
    _asked(v, m, ReloadMode.SWAP, 1.0)
    m.next_stats(2.0, stats(21, 22))
    for now in (2.0, 2.25):
        m.probe_due(now)
        m.health_result(now, NEXT, True, OK)
    m.next_stats(2.5, stats(31, 32))
    m.health_result(3.5, CURRENT, False, "GET / answered 500")
    v.settle(m, lambda: None)
    assert not v.current["ok"] and v.current["kind"] == "rolled back"
    assert "GET / answered 500" in v.current["message"]


def test_a_candidate_refused_by_its_health_check() -> None:
    m, ctl = _running_with_health()
    v = Verdicts()
    _asked(v, m, ReloadMode.SWAP, 1.0)
    m.next_stats(2.0, stats(21, 22))
    m.probe_due(2.0)
    m.health_result(2.1, NEXT, False, "GET / answered 404")
    v.settle(m, lambda: None)
    assert not v.current["ok"] and v.current["kind"] == "refused by health check"


def test_a_graceful_reload_that_fails_its_check_says_so() -> None:
    m, ctl = _running_with_health()
    v = Verdicts()
    _asked(v, m, ReloadMode.GRACEFUL, 1.0)
    m.stats(2.0, stats(21, 22))
    m.probe_due(2.0)
    m.health_result(2.1, CURRENT, False, "GET / answered 500")
    v.settle(m, lambda: None)
    assert not v.current["ok"] and v.current["kind"] == "applied, health check failing"
    assert "cannot roll back" in v.current["message"]
