"""systemd: sd_notify messages and the per-app drop-ins for the service and its socket unit."""

from supervisor.systemd.notify import Notifier, watchdog_period
from supervisor.systemd.socketunit import render_socket_dropin
from supervisor.systemd.unit import render_unit_dropin

__all__ = ["Notifier", "render_socket_dropin", "render_unit_dropin", "watchdog_period"]
