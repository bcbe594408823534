"""Type the scalars of a spec's YAML from their resolver tags, refusing YAML 1.1 traps.

The spec is composed, never loaded: every node keeps its line and column, so
each problem points at the text the user wrote. Scalars are typed from the
resolver's tag rather than constructed, because YAML 1.1 silently turns `no`
into False, `0755` into 493 and `1.10` into 1.1.
"""

from __future__ import annotations

import math
import re
from typing import Optional

from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

_TAG = "tag:yaml.org,2002:"
STR, BOOL, INT, FLOAT, NULL = (_TAG + t for t in ("str", "bool", "int", "float", "null"))
TIMESTAMP, MERGE = _TAG + "timestamp", _TAG + "merge"

# ---- typing scalars ------------------------------------------------------


def is_null(node: Node) -> bool:
    return isinstance(node, ScalarNode) and node.tag == NULL


def is_text(node: Node) -> bool:
    return isinstance(node, ScalarNode) and node.tag == STR


def shorten(text: str, size: int = 40) -> str:
    """`text` for a message: a long one cut, with its length."""
    return text if len(text) <= size else f"{text[:size]}... ({len(text)} characters)"


def quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


# Digits past any number a spec means; int() refuses over 4,300 of them anyway.
MAX_DIGITS = 30


def yaml_int(text: str) -> int:
    """The integer YAML 1.1 reads from `text` (octal, hex, binary, base 60)."""
    value = text.replace("_", "")
    if len(value) > MAX_DIGITS:
        raise ValueError(f"the number {shorten(text)} is far too large for any setting")
    sign = -1 if value.startswith("-") else 1
    value = value.lstrip("+-")
    if value.startswith("0b"):
        return sign * int(value[2:], 2)
    if value.startswith("0x"):
        return sign * int(value[2:], 16)
    if ":" in value:
        return sign * _base60(value)
    if len(value) > 1 and value.startswith("0"):
        return sign * int(value, 8)
    return sign * int(value)


def yaml_float(text: str) -> float:
    """The float YAML 1.1 reads from `text` (including .inf, .nan, base 60)."""
    value = text.replace("_", "").lower()
    sign = -1.0 if value.startswith("-") else 1.0
    value = value.lstrip("+-")
    if value == ".inf":
        return sign * math.inf
    if value == ".nan":
        return math.nan
    if ":" in value:
        whole, _, fraction = value.rpartition(".")
        return sign * (_base60(whole) + float("0." + (fraction or "0")))
    return sign * float(value)


def _base60(value: str) -> int:
    total = 0
    for part in value.split(":"):
        total = total * 60 + int(part)
    return total


def int_trap(text: str) -> Optional[str]:
    """Why an int-tagged plain scalar is probably not what the user meant."""
    digits = text.replace("_", "").lstrip("+-")
    if ":" in digits:
        return f"YAML 1.1 reads {text} as {yaml_int(text)} (base 60)"
    if len(digits) > 1 and digits.startswith("0") and digits[1] not in "bx":
        return f"YAML 1.1 reads {text} as octal {yaml_int(text)}"
    return None


def trap_message(node: ScalarNode) -> str:
    """What YAML made of a plain scalar that was meant as text, and the fix."""
    text, tag = node.value, node.tag
    fix = f"quote it: {quote(text)}"
    if tag == BOOL:
        value = "true" if text.lower() in ("yes", "true", "on") else "false"
        return (
            f"read as boolean {value} by YAML (it treats yes/no/on/off/true/false "
            f"as booleans); {fix}"
        )
    if tag == INT and len(text) > MAX_DIGITS:
        return f"read as a number by YAML; {fix}"
    if tag == INT:
        trap = int_trap(text)
        return f"{trap}; {fix}" if trap else f"read as the number {yaml_int(text)} by YAML; {fix}"
    if tag == FLOAT:
        return f"read as the number {yaml_float(text)!r} by YAML; {fix}"
    if tag == NULL:
        return f"read as null (no value) by YAML; {fix}"
    if tag == TIMESTAMP:
        return f"read as a date by YAML; {fix}"
    return f"has the YAML tag {tag}; remove the tag"


def describe(node: Node) -> str:
    """A node's type and value in a user's words, for 'expected X, got Y'."""
    if isinstance(node, MappingNode):
        return "a mapping"
    if isinstance(node, SequenceNode):
        return "a list"
    text = node.value
    if node.tag == STR:
        return f"the text {quote(text)}"
    if node.tag == BOOL:
        return f"boolean {text}"
    if node.tag in (INT, FLOAT):
        return f"the number {text}"
    if node.tag == NULL:
        return "no value"
    if node.tag == TIMESTAMP:
        return f"the date {text}"
    return f"a value tagged {node.tag}"


def usable_text(text: str) -> str:
    """`text`, refused if no path, argument or environment variable could hold it.

    YAML's escapes ("\\0", "\\ud800") can write a NUL or a lone surrogate;
    the kernel cuts an argument at a NUL and Python cannot encode a surrogate,
    so `run` would fail where `check` said ok.
    """
    if "\0" in text:
        raise ValueError(
            "contains a NUL byte (\\0), which no path, socket, option or environment "
            "variable can hold; remove it"
        )
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValueError(
            f"contains {text[exc.start]!a}, a lone surrogate that is not text; remove it"
        ) from None
    return text


def as_text(node: Node) -> str:
    """A string scalar's text; plain scalars YAML typed otherwise are refused."""
    if not isinstance(node, ScalarNode):
        raise ValueError(f"expected text, got {describe(node)}")
    if node.tag != STR:
        if node.style:  # quoted but explicitly tagged, e.g. !!int "3"
            raise ValueError(f"expected text, got {describe(node)}")
        raise ValueError(trap_message(node))
    return usable_text(str(node.value))


def as_int(node: Node) -> int:
    """A whole number; booleans, quoted digits and octal-looking values refused."""
    if isinstance(node, ScalarNode) and node.tag == INT:
        trap = int_trap(node.value)
        if trap:
            plain = node.value.replace("_", "").lstrip("0") or "0"
            raise ValueError(f"{trap}; write {plain} without the leading zero")
        return yaml_int(node.value)
    if isinstance(node, ScalarNode) and node.tag == STR and re.fullmatch(r"[0-9]+", node.value):
        raise ValueError(
            f"expected a whole number, got the text {quote(node.value)}; "
            f"remove the quotes: {node.value}"
        )
    raise ValueError(f"expected a whole number, got {describe(node)}")


def as_number(node: Node, expected: str = "a number") -> float:
    """A finite int or float scalar as a float."""
    if isinstance(node, ScalarNode) and node.tag == INT:
        return float(as_int(node))
    if isinstance(node, ScalarNode) and node.tag == FLOAT:
        value = yaml_float(node.value)
        if not math.isfinite(value):
            raise ValueError(f"expected {expected}, got {node.value}")
        return value
    raise ValueError(f"expected {expected}, got {describe(node)}")


def as_bool(node: Node) -> bool:
    """A YAML boolean (true/false, yes/no, on/off); quoted text refused."""
    if isinstance(node, ScalarNode) and node.tag == BOOL:
        return str(node.value).lower() in ("yes", "true", "on")
    if is_text(node) and node.value.lower() in ("yes", "no", "true", "false", "on", "off"):
        raise ValueError(
            f"expected true or false, got the text {quote(node.value)}; "
            f"remove the quotes: {node.value}"
        )
    raise ValueError(f"expected true or false, got {describe(node)}")


