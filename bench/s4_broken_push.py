"""Scenario 4: failed requests during a push with a syntax error."""

from __future__ import annotations

import time
from typing import Any

from bench.common import break_app, make_app, remove, scratch
from bench.config import Settings
from bench.contenders import make, mtime_spacing, served
from tests.kit.load import Load
from tests.kit.net import try_get

CONTENDERS = ["ours: graceful", "py-autoreload", "touch-reload", "inotify+r"]


def run(cfg: Settings, log: Any) -> list[dict[str, Any]]:
    rows = []
    for name in CONTENDERS:
        for rep in range(cfg.broken_reps):
            tmp = scratch("broken")
            app = make_app(tmp / "app")
            c = make(name, tmp, tmp / "app")
            try:
                with served(c, tmp) as nginx, Load(nginx.port, threads=2, pause=0.01) as load:
                    time.sleep(mtime_spacing(c))
                    t0 = time.monotonic()
                    break_app(app)
                    c.after_save()
                    time.sleep(cfg.broken_window)
                    t1 = time.monotonic()
                    got = try_get(nginx.address, timeout=10.0)
                    failed = load.failed_between(t0, t1)
                    total = load.count_between(t0, t1)
                    still = got is not None and got[0] == 200
                rows.append(
                    {
                        "contender": name,
                        "rep": rep,
                        "failed": failed,
                        "requests": total,
                        "serving_after": still,
                    }
                )
                log(
                    f"broken push {name:15} #{rep}: {failed} of {total} failed; "
                    f"{'still serving' if still else 'site down'} after {cfg.broken_window:g} s"
                )
            finally:
                remove(tmp)
    return rows
