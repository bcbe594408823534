"""Prometheus metrics at /metrics, served by the supervisor itself (see collect.py)."""

from supervisor.metrics.collect import Counters, View
from supervisor.metrics.server import MetricsServer, start_metrics

__all__ = ["Counters", "MetricsServer", "View", "start_metrics"]
