"""systemd: sd_notify messages and the per-app unit drop-in."""

from supervisor.systemd.notify import Notifier, watchdog_period
from supervisor.systemd.unit import render_unit_dropin

__all__ = ["Notifier", "render_unit_dropin", "watchdog_period"]
