"""A master replaced by a swap retires: `q`, then SIGINT, then SIGKILL; never SIGTERM.

Fake masters and a number for a clock, through the real `promote_next` and
`tick_retiring`: each step must come exactly when its timeout says, and not
a moment before.
"""

from __future__ import annotations

import os
import signal
from dataclasses import replace
from pathlib import Path
from typing import Optional

import pytest
from fakes import make_spec

from supervisor.lifecycle.machine import KILL_AFTER
from supervisor.spec.model import LiveSpec, Spec, runtime_paths
from supervisor.uwsgi.controller import UwsgiController
from supervisor.uwsgi.instance import Instance

STOP_TIMEOUT = 10.0  # distinct from KILL_AFTER, so a mix-up shows


class FakeMaster(Instance):
    """A uWSGI master the controller swaps out; records what is done to it."""

    def __init__(self, spec: Spec, pid: int) -> None:
        super().__init__(spec, runtime_paths(spec).instance(str(pid)))
        self._pid = pid
        self.fifo_ok = True
        self.calls: list[str] = []

    @property
    def pid(self) -> Optional[int]:
        return self._pid

    def poll(self) -> Optional[int]:
        return self.exit_code

    def send_fifo(self, command: str) -> bool:
        self.calls.append(f"fifo {command}" if self.fifo_ok else f"fifo {command} (no reader)")
        return self.fifo_ok

    def signal(self, sig: int) -> None:
        self.calls.append(signal.Signals(sig).name)

    def kill(self) -> list[int]:
        self.calls.append("kill")
        return []

    def close(self) -> None:
        self.calls.append("close")


def make_controller(tmp_path: Path) -> tuple[UwsgiController, list[str]]:
    logs: list[str] = []
    spec = replace(make_spec(), runtime_dir=tmp_path, stop_timeout=STOP_TIMEOUT)
    return UwsgiController(LiveSpec(spec), logs.append), logs


def swap(ctl: UwsgiController, now: float, old_pid: int, new_pid: int) -> FakeMaster:
    """The candidate `new_pid` serves at `now`; returns the master it replaced."""
    old, new = FakeMaster(ctl.spec, old_pid), FakeMaster(ctl.spec, new_pid)
    ctl.current, ctl.next = old, new
    ctl.promote_next(now)
    assert ctl.current is new and ctl.next is None
    return old


def ticks(ctl: UwsgiController, start: float, end: float, step: float = 0.05) -> None:
    """The loop's retirement checks from `start` to `end` (inclusive)."""
    t = start
    while t <= end:
        ctl.tick_retiring(t)
        t = round(t + step, 6)


def test_promote_makes_the_candidate_the_live_master_and_quits_the_old(tmp_path: Path) -> None:
    ctl, logs = make_controller(tmp_path)
    old = swap(ctl, 100.0, old_pid=7, new_pid=8)
    assert ctl.retiring == [old]
    assert old.calls == ["fifo q"]  # stops accepting at once; finishes what it holds
    assert os.readlink(tmp_path / "master.fifo") == "master-8.fifo"
    assert os.readlink(tmp_path / "stats.sock") == "stats-8.sock"
    assert logs == ["swapped: uWSGI pid 8 now serves; retiring pid 7"]


def test_sigint_after_stop_timeout_then_sigkill_after_kill_after(tmp_path: Path) -> None:
    ctl, logs = make_controller(tmp_path)
    old = swap(ctl, 0.0, old_pid=7, new_pid=8)
    ticks(ctl, 0.0, STOP_TIMEOUT - 0.05)
    ctl.tick_retiring(STOP_TIMEOUT - 0.001)
    assert old.calls == ["fifo q"]  # not a moment before stop_timeout
    ctl.tick_retiring(STOP_TIMEOUT)
    assert old.calls == ["fifo q", "SIGINT"]
    assert logs[-1] == "retiring uWSGI pid 7 ignored 'q'; sending SIGINT"

    ticks(ctl, STOP_TIMEOUT + 0.05, STOP_TIMEOUT + KILL_AFTER - 0.05)
    ctl.tick_retiring(STOP_TIMEOUT + KILL_AFTER - 0.001)
    assert old.calls == ["fifo q", "SIGINT"]  # not a moment before KILL_AFTER
    ctl.tick_retiring(STOP_TIMEOUT + KILL_AFTER)
    assert old.calls == ["fifo q", "SIGINT", "kill"]
    assert old in ctl.retiring  # forgotten once it is seen to exit, not before


def test_a_q_that_found_no_reader_is_retried_until_it_lands(tmp_path: Path) -> None:
    ctl, _ = make_controller(tmp_path)
    ctl.current, ctl.next = FakeMaster(ctl.spec, 7), FakeMaster(ctl.spec, 8)
    old = ctl.current
    old.fifo_ok = False  # between execs
    ctl.promote_next(0.0)
    ctl.tick_retiring(0.05)
    assert old.calls == ["fifo q (no reader)", "fifo q (no reader)"]
    old.fifo_ok = True
    ctl.tick_retiring(0.10)
    ticks(ctl, 0.15, 2.0)
    assert old.calls == ["fifo q (no reader)", "fifo q (no reader)", "fifo q"]  # `q` once


def test_a_master_whose_fifo_never_takes_q_is_still_ended(tmp_path: Path) -> None:
    """A retiring master must not outlive its timeouts, whatever its FIFO does."""
    ctl, _ = make_controller(tmp_path)
    ctl.current, ctl.next = FakeMaster(ctl.spec, 7), FakeMaster(ctl.spec, 8)
    old = ctl.current
    old.fifo_ok = False
    ctl.promote_next(0.0)
    ticks(ctl, 0.0, STOP_TIMEOUT + KILL_AFTER)
    assert "SIGINT" in old.calls and "kill" in old.calls


@pytest.mark.parametrize("exit_at", [1.0, STOP_TIMEOUT + 1.0, STOP_TIMEOUT + KILL_AFTER + 1.0])
def test_a_retiring_master_that_exited_is_reaped_and_removed(
    tmp_path: Path, exit_at: float
) -> None:
    """Exits after `q`, after SIGINT or after SIGKILL: reaped, then forgotten."""
    ctl, _ = make_controller(tmp_path)
    old = swap(ctl, 0.0, old_pid=7, new_pid=8)
    ticks(ctl, 0.0, exit_at - 0.5, step=0.5)
    before = list(old.calls)
    old.exit_code = 0
    ctl.tick_retiring(exit_at)
    assert old.calls == [*before, "kill", "close"]  # leftover workers ended, files removed
    assert ctl.retiring == []
    assert old not in ctl.instances()
    ctl.tick_retiring(exit_at + 100.0)
    assert old.calls == [*before, "kill", "close"]


def test_never_sigterm_and_each_master_on_its_own_clock(tmp_path: Path) -> None:
    """SIGTERM is a brutal reload on uWSGI 2.0: a retiring master must never get it."""
    ctl, _ = make_controller(tmp_path)
    first = swap(ctl, 0.0, old_pid=7, new_pid=8)
    second = ctl.current
    assert isinstance(second, FakeMaster)
    ctl.next = FakeMaster(ctl.spec, 9)
    ctl.promote_next(4.0)  # a second push, swapped in before the first master is gone
    assert ctl.retiring == [first, second]
    ticks(ctl, 0.0, 40.0)
    assert first.calls[:2] == second.calls[:2] == ["fifo q", "SIGINT"]
    assert first.retire_deadline == STOP_TIMEOUT + KILL_AFTER
    assert second.retire_deadline == 4.0 + STOP_TIMEOUT + KILL_AFTER
    for master in (first, second):
        assert "SIGTERM" not in master.calls
        assert set(master.calls) == {"fifo q", "SIGINT", "kill"}
