"""Read an nginx config into directives, following its includes.

Tokens as nginx reads them (src/core/ngx_conf_file.c): words split by
blanks, `;` ends a directive, `{ ... }` holds a block, `#` starts a comment
where a word could start, quotes and backslashes escape, `${var}` is one
word. `include` is expanded in place, relative to the main file's
directory (nginx's conf prefix), with glob patterns; the files nginx ships
with parameters only (uwsgi_params, mime.types, ...) are not read.
"""

from __future__ import annotations

import glob
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Optional

from supervisor.importer.problems import ImportFailure, Where, fail

MAX_CONF_BYTES = 4 << 20
MAX_DEPTH = 16
PARAM_FILES = frozenset(
    {"uwsgi_params", "fastcgi_params", "fastcgi.conf", "scgi_params", "proxy_params",
     "mime.types", "koi-utf", "koi-win", "win-utf"}
)  # fmt: skip


@dataclass
class Directive:
    name: str
    args: list[str]
    where: Where
    block: Optional[list[Directive]] = None  # the `{ ... }` after it, if any

    def text(self) -> str:
        """The directive as one line, for comments: `location /bbb/ { ... }`."""
        head = " ".join([self.name, *self.args])
        return f"{head} {{ ... }}" if self.block is not None else f"{head};"

    def walk(self) -> Iterator[Directive]:
        """Every directive inside this one's block, depth first."""
        for child in self.block or []:
            yield child
            yield from child.walk()


@dataclass
class NginxConf:
    file: str
    root: Directive  # a pseudo-directive whose block is the whole file
    notes: list[str] = field(default_factory=list)


def read_nginx(file: str) -> NginxConf:
    """The config in `file` with its includes; ImportFailure on a syntax error."""
    conf = NginxConf(file, Directive("", [], Where(file, 0), []))
    prefix = os.path.dirname(os.path.abspath(file))
    conf.root.block = _parse_file(file, prefix, conf, None, ())
    return conf


def _read(file: str, included_at: Optional[Where]) -> str:
    try:
        with open(file, "rb") as f:
            data = f.read(MAX_CONF_BYTES + 1)
    except OSError as exc:
        why = exc.strerror or str(exc)
        message = f"{file}: cannot read it: {why}"
        if included_at is not None:
            message = f"{included_at}: cannot read {file}: {why}"
        raise ImportFailure([message]) from None
    if len(data) > MAX_CONF_BYTES:
        raise ImportFailure([f"{file}: over {MAX_CONF_BYTES} bytes; not an nginx config"])
    return data.decode("utf-8", errors="replace")


def _parse_file(
    file: str, prefix: str, conf: NginxConf, included_at: Optional[Where], chain: tuple[str, ...]
) -> list[Directive]:
    tokens = list(_tokens(_read(file, included_at), _shown(file) if included_at else file))
    stack: list[list[Directive]] = [[]]
    openers: list[Where] = []
    words: list[tuple[str, Where]] = []
    for word, where, quoted in tokens:
        if not quoted and word in (";", "{", "}"):
            if word == "}":
                if words:
                    raise fail(where, f"nginx config: '{words[0][0]}' is missing its ';'")
                if len(stack) == 1:
                    raise fail(where, "nginx config: unexpected '}'")
                block = stack.pop()
                openers.pop()
                stack[-1][-1].block = block
                continue
            if not words:
                raise fail(where, f"nginx config: unexpected '{word}'")
            directive = Directive(words[0][0], [w for w, _ in words[1:]], words[0][1])
            words = []
            if word == "{":
                directive.block = []
                stack[-1].append(directive)
                stack.append([])
                openers.append(where)
            elif directive.name == "include" and directive.args:
                stack[-1].extend(_include(directive, prefix, conf, chain + (file,)))
            else:
                stack[-1].append(directive)
            continue
        words.append((word, where))
    if words:
        raise fail(words[0][1], f"nginx config: '{words[0][0]}' is missing its ';'")
    if len(stack) > 1:
        raise fail(openers[-1], "nginx config: this '{' is never closed")
    return stack[0]


def _include(
    directive: Directive, prefix: str, conf: NginxConf, chain: tuple[str, ...]
) -> list[Directive]:
    pattern = directive.args[0]
    if os.path.basename(pattern) in PARAM_FILES:
        return [directive]  # parameters only: no location can hide there
    full = pattern if os.path.isabs(pattern) else os.path.join(prefix, pattern)
    is_glob = any(c in pattern for c in "*?[")
    files = sorted(glob.glob(full)) if is_glob else ([full] if os.path.exists(full) else [])
    if not files:
        if not is_glob:
            conf.notes.append(
                f"{directive.where}: include {pattern}: no such file ({full}); not searched"
            )
        return [directive]
    found: list[Directive] = []
    for path in files:
        if path in chain or len(chain) > MAX_DEPTH:
            raise fail(directive.where, f"nginx config: include {pattern} includes itself")
        found += _parse_file(path, prefix, conf, directive.where, chain)
    return found


def _shown(path: str) -> str:
    """An included file as comments name it: relative to here when under here."""
    rel = os.path.relpath(path)
    return path if rel.startswith("..") else rel


def _tokens(text: str, file: str) -> Iterator[tuple[str, Where, bool]]:
    """(word, where, quoted) for each word and each `;`, `{`, `}`."""
    i, line, n = 0, 1, len(text)
    while i < n:
        ch = text[i]
        if ch == "\n":
            line += 1
            i += 1
        elif ch in " \t\r":
            i += 1
        elif ch == "#":
            while i < n and text[i] != "\n":
                i += 1
        elif ch in ";{}":
            yield ch, Where(file, line), False
            i += 1
        elif ch in "\"'":
            start, out = line, []
            i += 1
            while i < n and text[i] != ch:
                if text[i] == "\\" and i + 1 < n and text[i + 1] in (ch, "\\"):
                    i += 1
                line += text[i] == "\n"
                out.append(text[i])
                i += 1
            if i >= n:
                raise fail(Where(file, start), "nginx config: a quoted string is never closed")
            i += 1
            yield "".join(out), Where(file, start), True
        else:
            start, out, braces = line, [], 0
            while i < n:
                ch = text[i]
                if ch == "{" and out and out[-1] == "$":
                    braces += 1
                elif ch == "}" and braces:
                    braces -= 1
                elif ch in " \t\r\n;{}" and not braces:
                    break
                elif ch == "\\" and i + 1 < n:
                    i += 1
                    ch = text[i]
                out.append(ch)
                i += 1
            yield "".join(out), Where(file, start), False
