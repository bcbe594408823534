"""The metrics section: where /metrics is served, never on a public address."""

from __future__ import annotations

from supervisor.spec.convert import from_text
from supervisor.spec.model import MetricsSpec
from supervisor.spec.sections import Section
from supervisor.spec.values import is_loopback, listen_scope, parse_address


def metrics_section(m: Section) -> MetricsSpec:
    listen = m.get("listen", from_text(parse_address), None, nullable=True)
    if listen is not None and not is_loopback(listen):
        m.problem(
            "listen",
            f"{listen.for_uwsgi()} listens on {listen_scope(listen)}: metrics name the app's "
            "paths and load; serve them on loopback (127.0.0.1:9117) or a unix socket, and let "
            "Prometheus reach them through nginx or an SSH tunnel",
        )
    return MetricsSpec(listen=listen)
