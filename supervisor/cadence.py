"""How often the loop looks at uWSGI and pings systemd's watchdog.

Starting or reloading, the stats socket is read every 50 ms, so readiness is
noticed at once; then every second for the first QUIET_AFTER seconds, when a
worker of new code is most likely to die. Once quiet (one master, nothing
under way for that long) it is read only as often as the watchdog needs
evidence of life: twice per ping under systemd's watchdog, else every
STATS_IDLE, and timers due within `align` of each other share one wake-up.
An idle supervisor so wakes a few times a minute; inotify, signals and its
threads wake it for real events.
"""

from __future__ import annotations

import os
from typing import Optional

from supervisor.lifecycle.machine import Machine
from supervisor.lifecycle.states import WAITING_STATES, State
from supervisor.systemd.notify import Notifier, watchdog_period
from supervisor.uwsgi.controller import UwsgiController

STATS_FAST = 0.05  # while starting or reloading: readiness is noticed this soon
STATS_SLOW = 1.0  # while a swap's masters overlap (a bake, a retiring master)
STATS_IDLE = 10.0  # quiet, without systemd's watchdog
QUIET_AFTER = 30.0  # settled this long: quiet
ALIGN = 1.0  # a ping or poll due this soon is done now: one wake-up, not two


class Cadence:
    def __init__(self, machine: Machine, controller: UwsgiController, notifier: Notifier) -> None:
        self.machine = machine
        self.controller = controller
        self.notifier = notifier
        self.watchdog = watchdog_period(os.environ)
        self.stats_idle = min(STATS_IDLE, self.watchdog / 4) if self.watchdog else STATS_IDLE
        self.align = min(ALIGN, self.stats_idle / 4)
        self.last_stats_poll = 0.0
        self.next_watchdog = 0.0
        self.settled_since: Optional[float] = None

    def quiet(self, now: float) -> bool:
        """Running one master, nothing under way, for QUIET_AFTER seconds: stats
        are only the watchdog's evidence now."""
        m, ctl = self.machine, self.controller
        settled = (
            m.state is State.RUNNING
            and m.bake_until is None
            and ctl.next is None
            and not ctl.retiring
        )
        if not settled:
            self.settled_since = None
            return False
        if self.settled_since is None:
            self.settled_since = now
        return now - self.settled_since >= QUIET_AFTER

    def slack(self, now: float) -> float:
        """How late a timer may fire to share another's wake-up."""
        return self.align if self.quiet(now) else 0.0

    def stats_due(self, now: float) -> float:
        """When to read the stats socket next: the interval follows the state
        *now*, so a reload that began mid-interval is checked within 50 ms."""
        if self.machine.state in WAITING_STATES:
            return self.last_stats_poll + STATS_FAST
        if self.quiet(now):
            return self.last_stats_poll + self.stats_idle
        # Never slower than the watchdog needs (a WatchdogSec under 4 s).
        return self.last_stats_poll + min(STATS_SLOW, self.stats_idle)

    def poll_stats_now(self, now: float) -> bool:
        """True (and noted) when the stats socket is to be read in this turn."""
        if now < self.stats_due(now) - self.slack(now):
            return False
        self.last_stats_poll = now
        return True

    def ping_due(self) -> Optional[float]:
        return self.next_watchdog if self.watchdog else None

    def ping(self, now: float) -> None:
        """WATCHDOG=1, every half period, while it is honest (see Machine.watchdog_ok)."""
        if not self.watchdog or now < self.next_watchdog - self.align:
            return
        self.next_watchdog = now + self.watchdog / 2
        # Two of the longest intervals between reads in any state (a read late
        # under load must not cost a ping), and never under 2 s (as before).
        stale_after = max(self.watchdog / 2, 2 * self.stats_idle, 2 * STATS_SLOW)
        if self.machine.watchdog_ok(now, stale_after=stale_after):
            self.notifier.watchdog()

    def idle_ping(self) -> None:
        """While taking over at start, before the machine runs."""
        if self.watchdog:
            self.notifier.watchdog()
