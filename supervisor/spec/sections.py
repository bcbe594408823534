"""The mappings of a spec: check their keys, read typed values, report problems.

Duplicate keys (which YAML keeps silently, last one winning), merge keys and
unknown keys are problems with a suggestion; a `Section` reads one mapping
with typed getters that report a bad value at its node and go on.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping, Sequence
from typing import Callable, Optional, TypeVar

from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from supervisor.spec.scalars import MERGE, describe, is_null, quote
from supervisor.spec.source import Report

T = TypeVar("T")

# ---- mappings ------------------------------------------------------------

Entry = tuple[ScalarNode, Node]  # key node, value node


def join(path: str, key: str) -> str:
    """`uwsgi.socket`; a key that is not a plain name goes in brackets: `nginx.static[/s]`."""
    if re.fullmatch(r"[A-Za-z0-9_-]+", key):
        return f"{path}.{key}" if path else key
    # Brackets show where a key of spaces, dots or nothing at all begins and ends.
    return f"{path}[{key}]"


def read_mapping(
    report: Report,
    node: MappingNode,
    path: str,
    valid: Optional[Sequence[str]],
    elsewhere: Mapping[str, str] = {},  # noqa: B006 - read only
) -> dict[str, Entry]:
    """A mapping's entries by key, first occurrence kept, in file order.

    Reports keys that are not scalars, YAML merge keys, duplicates and, when
    `valid` is given, unknown keys (with a suggestion).
    """
    entries: dict[str, Entry] = {}
    for key_node, value_node in node.value:
        if not isinstance(key_node, ScalarNode):
            report.add(key_node, path, f"a key must be a plain name, not {describe(key_node)}")
            continue
        key = str(key_node.value)
        if key_node.tag == MERGE:
            report.add(key_node, path, "YAML merge keys ('<<') are not supported; write keys out")
            continue
        if key in entries:
            first = entries[key][0].start_mark.line + 1
            report.add(
                key_node,
                join(path, key),
                f"duplicate key {quote(key)} (first given on line {first}); "
                "YAML would silently keep only the last one: remove one of them",
            )
            continue
        if valid is not None and key not in valid:
            report.add(key_node, join(path, key), unknown_key_message(key, valid, elsewhere))
            continue
        entries[key] = (key_node, value_node)
    return entries


def unknown_key_message(key: str, valid: Sequence[str], elsewhere: Mapping[str, str]) -> str:
    """'unknown key', with the closest valid key, else where it belongs, else the list.

    `elsewhere` maps keys of nested sections to their full paths, so a key
    written at the wrong level is pointed to its section.
    """
    if key in elsewhere:
        return f"unknown key {quote(key)} here; did you mean {quote(elsewhere[key])}?"
    for candidates in (valid, list(elsewhere)):
        lowered = {c.lower(): c for c in candidates}
        close = difflib.get_close_matches(key.lower().replace("-", "_"), list(lowered), n=1)
        if close:
            match = lowered[close[0]]
            return f"unknown key {quote(key)}; did you mean {quote(elsewhere.get(match, match))}?"
    return f"unknown key {quote(key)}; valid keys here: {', '.join(valid)}"


class Section:
    """One mapping of the spec, checked against its keys, with typed getters.

    Getters report a bad value at its node and return the default, so one
    pass finds every problem; `ok()` tells whether values were all good,
    for checks that compare two of them.
    """

    def __init__(
        self,
        report: Report,
        path: str,
        node: Optional[Node],
        keys: Sequence[str],
        anchor: Node,
        elsewhere: Mapping[str, str] = {},  # noqa: B006 - read only
    ) -> None:
        self.report = report
        self.path = path
        self.anchor = anchor  # where missing keys are reported
        self.failed: set[str] = set()
        self.entries: dict[str, Entry] = {}
        self.quiet_missing = False  # the whole section is missing and was reported
        if isinstance(node, MappingNode):
            self.anchor = node
            self.entries = read_mapping(report, node, path, keys, elsewhere)
        elif node is not None and not is_null(node):
            report.add(
                node, path, f"expected a mapping of keys ({', '.join(keys)}), got {describe(node)}"
            )

    def keypath(self, key: str) -> str:
        return join(self.path, key)

    def has(self, key: str) -> bool:
        return key in self.entries

    def ok(self, *keys: str) -> bool:
        return not any(k in self.failed for k in keys)

    def node(self, key: str) -> Node:
        """Where a problem with `key` is shown: its value, or its key when empty."""
        key_node, value = self.entries[key]
        return key_node if is_null(value) and not value.value else value

    def problem(self, key: str, message: str, node: Optional[Node] = None) -> None:
        self.failed.add(key)
        where = node or (self.node(key) if key in self.entries else self.anchor)
        self.report.add(where, self.keypath(key), message)

    def section(self, key: str, keys: Sequence[str], required: str = "") -> Section:
        """The nested mapping under `key` (empty when absent or null)."""
        entry = self.entries.get(key)
        if entry is None:
            sub = Section(self.report, self.keypath(key), None, keys, self.anchor)
            if required:
                self.problem(key, f"missing required key {quote(key)}; {required}")
                sub.quiet_missing = True
            return sub
        key_node, value = entry
        return Section(self.report, self.keypath(key), value, keys, key_node)

    def get(
        self,
        key: str,
        convert: Callable[[Node], T],
        default: T,
        *,
        nullable: bool = False,
        required: str = "",
    ) -> T:
        """`convert(value)`, or `default` when the key is absent or the value bad.

        `required` (a hint like "e.g. module: 'blog:app'") makes an absent key
        a problem; `nullable` lets null mean "use the default".
        """
        entry = self.entries.get(key)
        if entry is None:
            if required and not self.quiet_missing:
                self.problem(key, f"missing required key {quote(key)}; {required}")
            return default
        value = entry[1]
        if is_null(value):
            if nullable:
                return default
            hint = required or "give a value, or remove the key to use the default"
            self.problem(key, f"has no value; {hint}")
            return default
        try:
            return convert(value)
        except ValueError as exc:
            self.problem(key, str(exc), getattr(exc, "node", None))
            return default

    def get_list(self, key: str, convert: Callable[[Node], T]) -> Optional[tuple[T, ...]]:
        """Each item of a list converted; None when absent or any item is bad."""
        entry = self.entries.get(key)
        if entry is None:
            return None
        value = entry[1]
        if not isinstance(value, SequenceNode):
            self.problem(key, f"expected a list, e.g. [a, b], got {describe(value)}")
            return None
        items: list[T] = []
        for index, item in enumerate(value.value):
            try:
                items.append(convert(item))
            except ValueError as exc:
                self.failed.add(key)
                self.report.add(item, f"{self.keypath(key)}[{index}]", str(exc))
        return None if key in self.failed else tuple(items)

    def get_pairs(
        self,
        key: str,
        convert_key: Callable[[str], str],
        convert_value: Callable[[str, Node], T],
    ) -> tuple[tuple[str, T], ...]:
        """A free-form mapping (names of the user's choosing), in file order."""
        entry = self.entries.get(key)
        if entry is None or is_null(entry[1]):
            return ()
        value = entry[1]
        if not isinstance(value, MappingNode):
            self.problem(key, f"expected a mapping, got {describe(value)}")
            return ()
        pairs: list[tuple[str, T]] = []
        for name, (name_node, item) in read_mapping(
            self.report, value, self.keypath(key), None
        ).items():
            where = join(self.keypath(key), name)
            try:
                name = convert_key(name)
            except ValueError as exc:
                self.failed.add(key)
                self.report.add(name_node, where, str(exc))
                continue
            try:
                pairs.append((name, convert_value(name, item)))
            except ValueError as exc:
                self.failed.add(key)
                bad = getattr(exc, "node", None) or (name_node if is_null(item) else item)
                self.report.add(bad, where, str(exc))
        return tuple(pairs)


class NodeError(ValueError):
    """A bad value inside a larger one (a list item): report it at `node`."""

    def __init__(self, node: Node, message: str) -> None:
        super().__init__(message)
        self.node = node
