"""The shipped Grafana dashboard queries only metrics that /metrics serves."""

from __future__ import annotations

import json
import re
from pathlib import Path

from prometheus_client.core import CollectorRegistry
from prometheus_client.exposition import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from supervisor.lifecycle.states import State
from supervisor.metrics import Counters, View
from supervisor.metrics.collect import UwsgiCollector

DASHBOARD = Path(__file__).resolve().parent.parent / "etc" / "grafana-dashboard.json"
NAME = re.compile(r"\b(uwsgi_[a-z_]+)\b")


def served_names() -> set[str]:
    """Every sample name /metrics gives for a running app after one event of each kind."""
    worker = {"id": 1, "pid": 10, "accepting": 1, "status": "idle", "requests": 3,
              "apps": [{"id": 0, "mountpoint": "", "chdir": "/srv"}], "cores": [{}]}  # fmt: skip
    stats = {"listen_queue": 0, "workers": [worker], "sockets": [{"name": "x", "proto": "uwsgi"}]}
    counters = Counters()
    for doc in (
        {"event": "crash", "how": "killed by SIGKILL"},
        {"event": "reload", "mode": "swap", "verdict": "applied", "ok": True, "duration": 2.0},
        {"event": "refused", "verdict": "refused by import check"},
        {"event": "rollback"},
    ):
        counters.count(doc)
    sockets = ({"role": "app", "address": "/run/x.sock", "held_by": "supervisor",
                "backlog": 1024, "queued": 0},)  # fmt: skip
    view = View(State.RUNNING, 2, 0, 0.0, "inotify", stats, 0.5, sockets)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(UwsgiCollector(lambda: view, counters, "unix:///run/x/stats.sock"))
    text = generate_latest(registry).decode()
    return {s.name for f in text_string_to_metric_families(text) for s in f.samples}


def test_every_metric_the_dashboard_queries_is_served() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    queried = {m for e in exprs for m in NAME.findall(e)}
    assert len(queried) >= 15
    assert queried <= served_names(), queried - served_names()
