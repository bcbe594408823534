"""uWSGI's expansion passes over the options read: `$(ENV)`, `@(file)`, `%(option)`.

In uWSGI's order (core/uwsgi.c: environment, then files, then references).
`%(key)` is the value of the first option named `key` (any key: ini files
often define their own variables), and may be a small expression:
`%(processes cpus + 2)` concatenates the words, then adds (core/config.c
uwsgi_manage_placeholder). A reference to nothing would have been left
as written by uWSGI, which is never what was meant: it is an error here.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import replace
from functools import partial
from typing import Callable, Optional

from supervisor.importer.ini import Entry, Ini
from supervisor.importer.problems import ImportFailure

_REF = {sym: re.compile(re.escape(sym) + r"\(([^()]*)\)") for sym in "$@%"}
MAX_ROUNDS = 50


def expand(ini: Ini, environ: Mapping[str, str], cwd: str) -> list[str]:
    """Expand every entry of `ini` in place; returns notes (`FILE:LINE: ...`).

    Raises ImportFailure listing every reference that cannot be resolved.
    """
    notes: list[str] = []
    problems: list[str] = []

    def env(name: str, *, entry: Entry) -> Optional[str]:
        value = environ.get(name)
        if value is None:
            problems.append(
                f"{entry.where}: $({name}) in '{entry.text}': {name} is not set in this"
                f" environment; uWSGI took it from its own: set it and import again"
            )
            return None
        notes.append(f"{entry.where}: $({name}) taken from this environment: {value!r}")
        return value

    def at_file(name: str, *, entry: Entry) -> Optional[str]:
        path = name if os.path.isabs(name) else os.path.join(cwd, name)
        try:
            with open(path, encoding="utf-8") as f:
                value = f.read().rstrip("\n")
        except (OSError, UnicodeDecodeError) as exc:
            problems.append(f"{entry.where}: @({name}): cannot read it: {exc}")
            return None
        notes.append(f"{entry.where}: @({name}) read from {path}")
        return value

    entries: list[Entry] = []
    for entry in ini.entries:
        value: Optional[str] = entry.value
        value = _substitute(value, "$", partial(env, entry=entry))
        value = _substitute(value, "@", partial(at_file, entry=entry))
        entries.append(entry if value is None else replace(entry, value=value))
    first: dict[str, Entry] = {}
    for entry in entries:
        first.setdefault(entry.key, entry)
    resolved: dict[str, Optional[str]] = {}

    def option(key: str, *, entry: Entry, chain: tuple[str, ...]) -> Optional[str]:
        """The value of the first option named `key`, its own references resolved."""
        if key in chain:
            loop = " -> ".join((*chain, key))
            problems.append(f"{entry.where}: %({key}) refers to itself ({loop})")
            return None
        ini.referenced.add(key)
        if key not in resolved:
            source = first.get(key)
            if source is None:
                return None
            inner = partial(option, entry=source, chain=(*chain, key))
            resolved[key] = _substitute(source.value, "%", partial(placeholder, lookup=inner))
        return resolved[key]

    done: list[Entry] = []
    for entry in entries:
        lookup = partial(option, entry=entry, chain=())
        value = _substitute(entry.value, "%", partial(placeholder, lookup=lookup))
        if value is None:
            if not any(p.startswith(f"{entry.where}:") for p in problems):
                names = [n for n in _REF["%"].findall(entry.value) if n not in first]
                shown = ", ".join(f"%({n})" for n in names) or "a %(...)"
                problems.append(
                    f"{entry.where}: {shown} in '{entry.text}' names no option of this"
                    " config; uWSGI would have left it as written"
                )
            done.append(entry)
        else:
            done.append(replace(entry, value=value))
    ini.entries = done
    if problems:
        raise ImportFailure(problems)
    return notes


def _substitute(
    value: Optional[str], sym: str, lookup: Callable[[str], Optional[str]]
) -> Optional[str]:
    """`value` with each `SYM(name)` replaced by lookup(name); None if one has none."""
    for _ in range(MAX_ROUNDS):
        if value is None:
            return None
        match = _REF[sym].search(value)
        if match is None:
            return value
        found = lookup(match[1])
        if found is None:
            return None
        value = value[: match.start()] + found + value[match.end() :]
    return value


def placeholder(expr: str, *, lookup: Callable[[str], Optional[str]]) -> Optional[str]:
    """A `%(...)`'s value: one option's, or uWSGI's little expression of several."""
    if " " not in expr:
        return lookup(expr)
    current: Optional[str] = None
    op = "concat"
    for word in expr.split():
        if word in ("+", "-", "*", "/"):
            op = word
            continue
        if word in ("++", "--"):
            if current is not None:
                current = str(_int(current) + (1 if word == "++" else -1))
            op = "concat"
            continue
        value = word if re.fullmatch(r"-?[0-9]+", word) else (lookup(word) or "")
        current = _apply(op, current, value)
    return current


def _int(text: str) -> int:
    match = re.match(r"\s*[-+]?[0-9]+", text)
    return int(match[0]) if match else 0


def _apply(op: str, current: Optional[str], value: str) -> str:
    if op == "concat":
        return (current or "") + value
    a, b = _int(current or ""), _int(value)
    if op == "+":
        return str(a + b)
    if op == "-":
        return str(a - b)
    if op == "*":
        return str(a * b)
    return str(int(a / b)) if b else "0"
