"""Scenario 3r: restart of the supervising process itself under `wrk -t2 -c32`.

What a package upgrade does to each contender, while wrk runs through nginx:
- ours with a socket unit: SIGTERM to the supervisor (systemd's stop; it
  stops uWSGI gracefully), wait for it to exit, start it again. The
  benchmark process stands in for systemd: it bound the app socket once and
  hands it to every `uwsgi-supervisor run` it starts (fd 3, LISTEN_FDS=1,
  LISTEN_PID), so the socket stays open across the restart;
- ours without one: the same SIGTERM, exit and start; the supervisor's own
  socket closes with it;
- supervisord: a restart of supervisord itself (`systemctl restart
  supervisor`, as Debian's package upgrade does): SIGTERM, which stops its
  program with its defaults (SIGTERM, SIGKILL after stopwaitsecs), then it
  starts again and starts the program;
- the shell loop: Ctrl-C at its terminal (SIGINT to its group), started again.
Failed requests and the time from the restart's first signal to the first
response from a process of the new instance.
"""

from __future__ import annotations

from typing import Any, Callable

from bench.common import make_app, remove, scratch
from bench.config import Settings
from bench.contenders import SOCKET_UNIT, make, served
from bench.under_wrk import describe, disrupt

# (row label, contender)
CONTENDERS = [
    (SOCKET_UNIT, SOCKET_UNIT),
    ("ours, no socket unit", "ours: graceful"),
    ("supervisord", "supervisord"),
    ("shell loop", "shell loop"),
]


def _restart(c: Any) -> Callable[[int], None]:
    return lambda _master: c.restart()


def run(cfg: Settings, log: Any) -> list[dict[str, Any]]:
    rows = []
    for label, name in CONTENDERS:
        tmp = scratch("restart")
        make_app(tmp / "app")
        kw = {"stopwaitsecs": cfg.supervisord_stopwaitsecs} if name == "supervisord" else {}
        c: Any = make(name, tmp, tmp / "app", **kw)
        try:
            with served(c, tmp) as nginx:
                for rep in range(cfg.restart_reps):
                    row = {
                        "contender": label,
                        "rep": rep,
                        **disrupt(c, nginx, cfg, _restart(c)),
                    }
                    rows.append(row)
                    log(f"restart under wrk {label[:24]:24} #{rep}: {describe(row)}")
        finally:
            remove(tmp)
    return rows
