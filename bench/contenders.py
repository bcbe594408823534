"""Name -> contender, and one context that serves a contender through nginx."""

from __future__ import annotations

import contextlib
import math
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Union

from bench.alternatives import PlainUwsgi, ShellLoop, Supervisord
from bench.common import serves
from bench.ours import Ours, OursSocketUnit
from tests.kit.nginx import Nginx, running_nginx
from tests.kit.wait import wait_until

Contender = Union[Ours, PlainUwsgi, Supervisord, ShellLoop]

RELOADERS = [
    "ours: graceful",
    "ours: chain",
    "ours: swap",
    "py-autoreload",
    "touch-reload",
    "inotify+r",
]
START_TIMEOUT = 60.0
# The row label says what stands in for systemd: the benchmark process holds the socket.
SOCKET_UNIT = "ours + socket unit (the harness holds the socket, as systemd would)"


def make(name: str, tmp: Path, app_dir: Path, **kw: Any) -> Contender:
    if name == SOCKET_UNIT:
        return OursSocketUnit(tmp, app_dir, **kw)
    if name.startswith("ours: "):
        return Ours(tmp, app_dir, mode=name.split(": ", 1)[1], **kw)
    if name == "supervisord":
        return Supervisord(tmp, app_dir, **kw)
    if name == "shell loop":
        return ShellLoop(tmp, app_dir, **kw)
    return PlainUwsgi(tmp, app_dir, mode=name, **kw)


def mtime_spacing(c: Contender) -> float:
    """Seconds to wait before a save so that touch-reload and py-autoreload can see it.

    They compare whole-second mtimes: a save within the same second as the
    last write of the file (or touch) goes unseen.
    """
    if not (isinstance(c, PlainUwsgi) and c.mode in ("py-autoreload", "touch-reload")):
        return 0.0
    last = max(
        os.stat(c.app_dir / "app.py").st_mtime,
        os.stat(c.touch_file).st_mtime if c.touch_file.exists() else 0.0,
    )
    wait = max(0.0, math.floor(last) + 1.05 - time.time())
    if c.mode == "py-autoreload":
        # Its reloader thread records the mtimes it first sees about a second
        # after the workers start: a save before that first scan goes unseen.
        wait = max(wait, 1.5)
    return wait


def is_ours(c: Contender) -> bool:
    return isinstance(c, Ours)


@contextlib.contextmanager
def served(c: Contender, tmp: Path, version: str = "v1") -> Iterator[Nginx]:
    """Start `c` and nginx in front of it; yield once `version` is served; end both."""
    try:
        c.start()
        wait_until(c.ready, START_TIMEOUT, f"{c.label} ready")
        with running_nginx(tmp / "nginx", c.include(), quiet=True) as nginx:
            wait_until(lambda: serves(nginx.port, version), START_TIMEOUT, f"{c.label} serving")
            yield nginx
    finally:
        c.close()
