"""sd_notify never blocks the loop, and nothing that matters is dropped."""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path

import pytest

from supervisor.systemd.notify import Notifier, watchdog_period


def test_a_receiver_that_stops_reading_never_blocks_us(
    short_tmp: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = short_tmp / "notify.sock"
    receiver = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    receiver.bind(str(path))
    monkeypatch.setenv("NOTIFY_SOCKET", str(path))
    notifier = Notifier()
    started = time.monotonic()
    for i in range(5000):  # far more than the kernel queues for an unread socket
        notifier.status(f"serving: request {i}")
    notifier.ready("serving")
    assert time.monotonic() - started < 5.0
    assert notifier.pending, "the queue should have filled up"
    receiver.setblocking(False)
    got: list[bytes] = []
    deadline = time.monotonic() + 10
    while not any(b"READY=1" in m for m in got) and time.monotonic() < deadline:
        try:
            while True:
                got.append(receiver.recv(65536))
        except BlockingIOError:
            pass
        notifier.flush()
    assert any(b"READY=1" in m for m in got)
    receiver.close()


def test_watchdog_period_only_for_us(monkeypatch: pytest.MonkeyPatch) -> None:
    assert watchdog_period({"WATCHDOG_USEC": "10000000"}) == 10.0
    assert watchdog_period({"WATCHDOG_USEC": "10000000", "WATCHDOG_PID": str(os.getpid())}) == 10.0
    assert watchdog_period({"WATCHDOG_USEC": "10000000", "WATCHDOG_PID": "1"}) is None
    assert watchdog_period({}) is None
    assert watchdog_period({"WATCHDOG_USEC": "0"}) is None
