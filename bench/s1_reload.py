"""Scenario 1: reload latency, file saved -> first response with the new code through nginx."""

from __future__ import annotations

import time
from typing import Any

from bench.common import first_response, make_app, remove, scratch, serves
from bench.config import Settings
from bench.contenders import RELOADERS, make, mtime_spacing, served
from tests.kit.app import set_version
from tests.kit.wait import wait_until


def run(cfg: Settings, log: Any) -> list[dict[str, Any]]:
    rows = []
    for variant in cfg.variants:
        for name in RELOADERS:
            tmp = scratch("reload")
            app = make_app(tmp / "app", variant)
            c = make(name, tmp, tmp / "app")
            try:
                with served(c, tmp) as nginx:
                    for rep in range(cfg.reload_reps):
                        version = f"v{rep + 2}"
                        wait_until(lambda c=c: not c.busy(), 60, "no reload under way")
                        time.sleep(mtime_spacing(c))
                        t0 = time.monotonic()
                        set_version(app, version)
                        c.after_save()
                        t1 = first_response(
                            nginx.port,
                            lambda s, b, v=version: s == 200 and b.startswith(v + " "),
                            30,
                        )
                        seconds = None if t1 is None else t1 - t0
                        rows.append(
                            {"contender": name, "variant": variant, "rep": rep, "seconds": seconds}
                        )
                        log(
                            f"reload {variant:11} {name:15} #{rep}: "
                            + ("never (30 s)" if seconds is None else f"{seconds * 1000:.0f} ms")
                        )
                        if t1 is None:
                            break
                        wait_until(
                            lambda v=version: serves(nginx.port, v), 60, f"{version} everywhere"
                        )
                        # A quiet second between saves: each one then starts from a settled
                        # instance (without it, a chain reload measured once at 205 ms: a
                        # worker of the previous reload loaded the new file).
                        if rep + 1 < cfg.reload_reps:
                            time.sleep(1.1)
            finally:
                remove(tmp)
    return rows
