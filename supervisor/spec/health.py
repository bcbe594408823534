"""The `health:` section: the request path, the Host header and the statuses
that pass. Each value parser raises ValueError with the fix."""

from __future__ import annotations

import re

from yaml.nodes import Node, SequenceNode

from supervisor.spec.convert import at_least, duration, from_text
from supervisor.spec.model import HealthSpec
from supervisor.spec.scalars import as_bool, as_int, as_text, is_text
from supervisor.spec.sections import Section
from supervisor.spec.values import URL_PATH

HOST = re.compile(r"[A-Za-z0-9.-]+(:[0-9]{1,5})?|\[[0-9A-Fa-f:.]+\](:[0-9]{1,5})?")
QUERY = re.compile(r"[A-Za-z0-9/_.~+@,=&%-]*")


def health_path(text: str) -> str:
    """A path (and query) as nginx would pass it: /, /healthz, /bbb/?check=1."""
    path, _, query = text.partition("?")
    if not URL_PATH.fullmatch(path) or not QUERY.fullmatch(query):
        raise ValueError(
            f"'{text}' is not a URL path; write it from '/', e.g. /healthz"
            " (with a sub-path mount, the full path: /bbb/healthz)"
        )
    return text


def host_header(text: str) -> str:
    if not HOST.fullmatch(text):
        raise ValueError(f"'{text}' is not a host name (a Host header such as example.com)")
    return text


def _status(node: Node) -> tuple[int, int]:
    """200, or a range written as text: '200-399'."""
    if is_text(node):
        low_text, dash, high_text = as_text(node).partition("-")
        if not dash:
            raise ValueError(f"'{node.value}' is not a status or a range such as 200-399")
        try:
            low, high = int(low_text), int(high_text)
        except ValueError:
            raise ValueError(f"'{node.value}' is not a range such as 200-399") from None
    else:
        low = high = as_int(node)
    if not (100 <= low <= high <= 599):
        raise ValueError(f"statuses are 100 to 599, low to high; got {low}-{high}")
    return (low, high)


def status_ranges(node: Node) -> tuple[tuple[int, int], ...]:
    """The statuses that pass: one (200, '200-399') or a list of them."""
    items = node.value if isinstance(node, SequenceNode) else [node]
    if not items:
        raise ValueError("is empty: no answer could pass; give e.g. 200 or 200-399")
    return tuple(_status(item) for item in items)


def health_section(h: Section) -> HealthSpec:
    return HealthSpec(
        enabled=h.get("enabled", as_bool, HealthSpec.enabled),
        path=h.get("path", from_text(health_path), HealthSpec.path, nullable=True),
        expect=h.get("expect", status_ranges, HealthSpec.expect),
        host=h.get("host", from_text(host_header), HealthSpec.host),
        timeout=h.get("timeout", duration(positive=True), HealthSpec.timeout),
        passes=h.get("passes", at_least(1, 100, "consecutive passes"), HealthSpec.passes),
        bake=h.get("bake", duration(), HealthSpec.bake),
        interval=h.get("interval", duration(positive=True), HealthSpec.interval),
        failures=h.get("failures", at_least(1, 100, "failures in a row"), HealthSpec.failures),
    )
