"""Test doubles for pure-logic tests: a fake Controller, specs and stats samples.

Checked by mypy with the package: a fake that drifts from the protocol it
stands in for fails the type check, not a test run much later.
"""

from __future__ import annotations

import signal
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable, Optional

from supervisor.lifecycle.effects import Announcement
from supervisor.lifecycle.machine import Machine
from supervisor.lifecycle.samples import Stats, Worker
from supervisor.spec.model import (
    Address,
    AppSpec,
    HealthSpec,
    LiveSpec,
    RestartSpec,
    Spec,
    UwsgiSpec,
)


class FakeController:
    """Records what the machine asked for, in order, as short strings."""

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.fifo_ok = True
        self.rollback_ok = True

    def spawn(self, now: float) -> None:
        self.calls.append("spawn")

    def release_next(self) -> bool:
        self.calls.append("release next")
        return self.fifo_ok

    def send_fifo(self, command: str) -> bool:
        self.calls.append(f"fifo {command}" if self.fifo_ok else f"fifo {command} (no reader)")
        return self.fifo_ok

    def signal_master(self, sig: int) -> None:
        self.calls.append(f"signal {signal.Signals(sig).name}")

    def kill_instance(self) -> None:
        self.calls.append("kill")

    def reap_leftovers(self) -> None:
        self.calls.append("reap")

    def spawn_next(self, now: float) -> None:
        self.calls.append("spawn next")

    def promote_next(self, now: float, bake: bool = False) -> None:
        self.calls.append("promote next" + (", pause old" if bake else ""))

    def end_bake(self, now: float) -> None:
        self.calls.append("end bake")

    def roll_back(self, now: float) -> bool:
        self.calls.append("roll back")
        return self.rollback_ok

    def abort_next(self) -> None:
        self.calls.append("abort next")


class Announced(list[Announcement]):
    """The machine's announcement list, also written into the controller's calls,
    so a test sees announcements and process actions in one order."""

    def __init__(self, calls: list[str]) -> None:
        super().__init__()
        self.calls = calls

    def append(self, item: Announcement) -> None:
        super().append(item)
        self.calls.append(item.value)


def make_spec(**restart: Any) -> Spec:
    return Spec(
        path=Path("/etc/uwsgi-supervisor/t.yaml"),
        name="t",
        app=AppSpec("blog", "app", False, Path("/srv/blog")),
        uwsgi=UwsgiSpec(binary="/usr/bin/uwsgi", socket=Address(path=Path("/run/t/app.sock"))),
        runtime_dir=Path("/run/t"),
        restart=replace(RestartSpec(), **restart),
        # Off here: the machine's other rules are tested without a health
        # check in the way; tests of the check turn it on (make_health_spec).
        health=HealthSpec(enabled=False),
    )


def make_health_spec(**health: Any) -> Spec:
    """make_spec with the health check on (its defaults, or `health`)."""
    return replace(make_spec(), health=replace(HealthSpec(), **health))


def make_machine(
    spec: Optional[Spec] = None, rand: Callable[[], float] = lambda: 0.5
) -> tuple[Machine, FakeController, list[str]]:
    """A machine on a fake controller; returns it, the controller and the log lines."""
    ctl = FakeController()
    logs: list[str] = []
    m = Machine(LiveSpec(spec or make_spec()), ctl, logs.append, rand=rand)
    m.announcements = Announced(ctl.calls)
    return m, ctl, logs


def stats(
    *pids: int, serving: bool = True, listen_queue: int = 0, status: str = "idle"
) -> Stats:
    """A stats sample with one worker per pid, all serving (or none), all `status`."""
    workers = tuple(
        Worker(i + 1, pid, serving, status, 0, 0, 0, 0, 1, 1 if serving else 0)
        for i, pid in enumerate(pids)
    )
    return Stats(pid=100, version="2.0.31", listen_queue=listen_queue, workers=workers)


def make_checked_machine(**health: Any) -> tuple[Machine, FakeController, list[str]]:
    """A machine with the health check on (`health` overrides), started, its two
    workers serving and its checks passed: RUNNING, the controller's calls cleared."""
    from supervisor.lifecycle.health import CURRENT

    m, ctl, logs = make_machine(make_health_spec(**health))
    m.start(0.0)
    m.stats(0.1, stats(11, 12))
    for now in (0.2, 0.5):
        assert m.probe_due(now) == CURRENT
        m.health_result(now, CURRENT, True, "GET / answered 200")
    assert m.state.value == "running"
    ctl.calls.clear()
    return m, ctl, logs
