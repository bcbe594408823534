"""Scenario 8: a /metrics scrape of an app with 64 workers: time and size.

Our supervisor answers a scrape from the loop's last stats sample; a sidecar
exporter (uwsgi_exporter) reads the stats socket on every scrape. The
reference row is that read alone, timed the same way: what any sidecar pays
per scrape before it has formatted a single line.
"""

from __future__ import annotations

import re
import time
from typing import Any

from bench.common import make_app, remove, scratch
from bench.config import Settings
from bench.ours import Ours
from supervisor.uwsgi.stats import read_stats_raw
from tests.kit.net import free_port, http_get
from tests.kit.wait import wait_until

WORKERS = 64


def run(cfg: Settings, log: Any) -> list[dict[str, Any]]:
    tmp = scratch("metrics")
    make_app(tmp / "app")
    port = free_port()
    ours = Ours(tmp, tmp / "app", processes=WORKERS)
    ours.spec.write_text(ours.spec.read_text() + f"metrics:\n  listen: 127.0.0.1:{port}\n")
    target = f"127.0.0.1:{port}"
    rows: list[dict[str, Any]] = []
    try:
        ours.start()
        wait_until(ours.ready, 120, "64 workers serving")
        every = re.compile(rf"^uwsgi_workers{{[^}}]*}} {WORKERS}\.0$", re.MULTILINE)
        wait_until(
            lambda: every.search(http_get(target, "/metrics")[1]),
            60,
            "the stats sample with every worker in /metrics",
        )
        scrapes = 10 if cfg.quick else 100
        for i in range(scrapes):
            t0 = time.perf_counter()
            status, body = http_get(target, "/metrics")
            took = time.perf_counter() - t0
            assert status == 200
            rows.append({"what": "scrape", "i": i, "ms": took * 1000, "bytes": len(body)})
            t0 = time.perf_counter()
            doc = read_stats_raw(ours.rt / "stats.sock", timeout=5.0)
            took = time.perf_counter() - t0
            assert doc is not None and len(doc["workers"]) == WORKERS
            rows.append({"what": "stats_read", "i": i, "ms": took * 1000})
        last = rows[-2]
        log(f"64 workers: scrape {last['ms']:.1f} ms, {last['bytes'] / 1024:.0f} KiB")
    finally:
        ours.close()
        remove(tmp)
    return rows
