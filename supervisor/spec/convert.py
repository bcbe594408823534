"""Converters from a YAML node to a spec value: ValueError with a message if bad."""

from __future__ import annotations

from typing import Callable, Optional, TypeVar

from yaml.nodes import Node, ScalarNode

from supervisor.spec.scalars import BOOL, as_int, as_number, as_text, is_text
from supervisor.spec.values import format_duration, parse_duration

T = TypeVar("T")



def from_text(parse: Callable[[str], T]) -> Callable[[Node], T]:
    """A converter that takes a text scalar and parses or checks it."""
    return lambda node: parse(as_text(node))


def at_least(minimum: int, maximum: Optional[int] = None, why: str = "") -> Callable[[Node], int]:
    """A whole number from `minimum` up to `maximum` (`why` says where the bound comes from)."""

    def convert(node: Node) -> int:
        value = as_int(node)
        if value < minimum:
            raise ValueError(f"must be {minimum} or more, got {value}")
        if maximum is not None and value > maximum:
            reason = f" ({why})" if why else ""
            raise ValueError(f"must be at most {maximum}{reason}, got {value}")
        return value

    return convert


def number_in(low: float, high: Optional[float], why: str) -> Callable[[Node], float]:
    def convert(node: Node) -> float:
        value = as_number(node)
        if value < low or (high is not None and value > high):
            bounds = f"from {low:g} to {high:g}" if high is not None else f"{low:g} or more"
            raise ValueError(f"must be {bounds} ({why}), got {value:g}")
        return value

    return convert


# The longest duration a spec may give: a timeout or wait past a day is a typo,
# and a huge one overflows the event loop's timeouts (select refuses them).
MAX_DURATION = 86400.0


def duration(positive: bool = False) -> Callable[[Node], float]:
    def convert(node: Node) -> float:
        if is_text(node):
            seconds = parse_duration(node.value)
        elif isinstance(node, ScalarNode) and node.tag == BOOL:
            raise ValueError(
                f"bad duration '{node.value}' (YAML reads it as a boolean); "
                "use a number of seconds or 300ms, 2s, 1m"
            )
        else:
            seconds = parse_duration(as_number(node, "a duration such as 2s or 300ms"))
        if positive and seconds == 0:
            raise ValueError("must be more than 0")
        if seconds > MAX_DURATION:
            raise ValueError(
                f"{format_duration(seconds)} is longer than a day, the most any wait or timeout "
                "here may be; give a shorter one"
            )
        return seconds

    return convert
