"""Prometheus metrics at /metrics, served by the supervisor itself.

`model.py` holds what the loop keeps (always, and cheap); `collect.py` and
`server.py` need prometheus_client and are imported only when
`metrics.listen` is set (`start_metrics`), so an app without metrics does
not carry it in memory.
"""

from supervisor.metrics.model import Counters, View

__all__ = ["Counters", "View"]
