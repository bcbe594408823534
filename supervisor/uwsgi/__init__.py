"""uWSGI itself: its command line, master FIFO, stats socket, processes and runtime dir."""

from supervisor.uwsgi.command import build_command
from supervisor.uwsgi.controller import UwsgiController
from supervisor.uwsgi.failures import summarize_failure

__all__ = ["UwsgiController", "build_command", "summarize_failure"]
