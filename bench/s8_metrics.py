"""Scenario 8: a /metrics scrape of an app with 64 workers: time and size.

Our supervisor answers a scrape from the loop's last stats sample; a sidecar
exporter (uwsgi_exporter) reads the stats socket on every scrape. The
reference row is that read alone, timed the same way: what any sidecar pays
per scrape before it has formatted a single line.
"""

from __future__ import annotations

import http.client
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
# What Prometheus 2.x/3.x sends: it prefers OpenMetrics, so that is what a real scrape gets.
PROMETHEUS_ACCEPT = (
    "application/openmetrics-text;version=1.0.0;q=0.5,"
    "application/openmetrics-text;version=0.0.1;q=0.4,text/plain;version=0.0.4;q=0.3,*/*;q=0.2"
)


def scrape(port: int, accept: str) -> bytes:
    """One GET /metrics on a fresh connection, as Prometheus makes it."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", "/metrics", headers={"Accept": accept} if accept else {})
        resp = conn.getresponse()
        body = resp.read()
        assert resp.status == 200, resp.status
        return body
    finally:
        conn.close()


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
            for what, accept in (("scrape", ""), ("scrape_openmetrics", PROMETHEUS_ACCEPT)):
                t0 = time.perf_counter()
                body = scrape(port, accept)
                took = time.perf_counter() - t0
                rows.append({"what": what, "i": i, "ms": took * 1000, "bytes": len(body)})
            t0 = time.perf_counter()
            doc = read_stats_raw(ours.rt / "stats.sock", timeout=5.0)
            took = time.perf_counter() - t0
            assert doc is not None and len(doc["workers"]) == WORKERS
            rows.append({"what": "stats_read", "i": i, "ms": took * 1000})
        last = rows[-3]
        log(f"64 workers: scrape {last['ms']:.1f} ms, {last['bytes'] / 1024:.0f} KiB")
    finally:
        ours.close()
        remove(tmp)
    return rows
