"""Before the first master: adopt what a previous supervisor left serving,
stop the rest, and hold the listening sockets for the app's whole life."""

from __future__ import annotations

from typing import Callable, Optional

from supervisor.spec.model import Spec
from supervisor.uwsgi import procs
from supervisor.uwsgi.adopt import Orphan, find_orphan
from supervisor.uwsgi.controller import UwsgiController
from supervisor.uwsgi.listeners import ListenerError, open_listeners
from supervisor.uwsgi.runtime import stop_leftovers


def take_over(
    spec: Spec,
    controller: UwsgiController,
    info: Callable[[str], None],
    warning: Callable[[str], None],
    tick: Callable[[], None],
) -> Optional[Orphan]:
    """Set up `controller.listeners`; the master to adopt, if any (None: start one).

    Raises ListenerError (with the fix) if the sockets cannot be had; nothing
    of this app is left running then.
    """
    orphan = find_orphan(spec, info)
    stop_leftovers(spec, info, tick, orphan.tag if orphan is not None else None)
    try:
        controller.listeners = open_listeners(
            spec, warning, inherited=orphan.sockets if orphan is not None else ()
        )
    except ListenerError:
        if orphan is not None:
            procs.kill_leftovers(spec.runtime_dir, orphan.tag)
        raise
    for listener in controller.listeners.all():
        info(
            f"{listener.role} socket {listener.address.for_uwsgi()} (backlog"
            f" {listener.backlog}) held by {listener.held_by}"
        )
    return orphan
