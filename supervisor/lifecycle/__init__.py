"""The life of one uWSGI master as a pure state machine: states, transitions, backoff.

No sockets, FIFOs or processes here: the machine acts through a `Controller`
and announces milestones, and `now` is always passed in.
"""

from supervisor.lifecycle.effects import Announcement, Controller
from supervisor.lifecycle.machine import Machine
from supervisor.lifecycle.samples import Stats, Worker
from supervisor.lifecycle.states import State, StopIntent

__all__ = ["Announcement", "Controller", "Machine", "State", "Stats", "StopIntent", "Worker"]
