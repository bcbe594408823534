"""The spec file as text and YAML nodes, and the problems found in it.

Whatever makes the whole file unusable (missing, binary, empty, bad YAML,
not a mapping) is raised here as a single one-line problem; everything else
is collected in a `Report` so that one run shows every problem.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import yaml
from yaml.nodes import MappingNode, Node, SequenceNode

_NULL = "tag:yaml.org,2002:null"
# YAML's line breaks (str.splitlines also splits on form feeds and others).
_LINE_BREAK = re.compile(r"\r\n|[\n\r\x85\u2028\u2029]")


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a spec, placed at the text that causes it."""

    file: Path
    line: int  # 1-based; 0 when the problem is with the whole file
    col: int  # 1-based
    key: str  # dotted key path, e.g. "uwsgi.socket"; "" for the whole file
    message: str
    source_line: str = ""

    def render(self) -> str:
        """`FILE:LINE:COL: key: message`, then the source line and a caret."""
        where = f"{self.file}:{self.line}:{self.col}" if self.line else str(self.file)
        key, message = _printable(self.key), _printable(self.message)
        head = f"{where}: {key}: {message}" if self.key else f"{where}: {message}"
        if not self.source_line:
            return head
        # Keep tabs so the caret lines up under the same tab stops.
        pad = "".join(c if c == "\t" else " " for c in self.source_line[: self.col - 1])
        return f"{head}\n    {self.source_line}\n    {pad}^"


def _printable(text: str) -> str:
    """`text` on one line, with what a terminal would act on (a NUL, a newline, an
    escape sequence from a quoted YAML value the message echoes) written as escapes."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode() for c in text)


class SpecError(Exception):
    """A spec that cannot be used; `problems` lists everything found."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems = list(problems)
        super().__init__(str(self))

    def __str__(self) -> str:
        return "\n".join(p.render() for p in self.problems)


# A spec is a few kilobytes; anything past this is the wrong file.
MAX_SPEC_BYTES = 1 << 20


def _file_error(path: Path, message: str, line: int = 0, col: int = 0) -> SpecError:
    return SpecError([Problem(path, line, col, "", message)])


def read_yaml(path: Path) -> tuple[str, MappingNode]:
    """The spec's text and its top-level mapping node.

    Raises SpecError with a single one-line problem when the file as a whole
    is unusable: missing, not a regular file, unreadable, binary, empty, bad
    YAML, or not a mapping at the top.
    """
    try:
        mode = os.stat(path).st_mode
        data = _read_capped(path) if stat.S_ISREG(mode) else b""
    except FileNotFoundError:
        if path.is_symlink():
            raise _file_error(path, f"is a broken symlink to {os.readlink(path)}") from None
        raise _file_error(path, "no such file") from None
    except PermissionError:
        raise _file_error(path, "cannot read it: permission denied") from None
    except OSError as exc:
        raise _file_error(path, f"cannot read it: {exc.strerror}") from None
    if stat.S_ISDIR(mode):
        raise _file_error(path, "is a directory; give the spec file, e.g. app.yaml")
    if not stat.S_ISREG(mode):
        raise _file_error(path, "is not a regular file; give the spec file, e.g. app.yaml")
    if len(data) > MAX_SPEC_BYTES:
        raise _file_error(
            path,
            f"is larger than {MAX_SPEC_BYTES // 1024} KiB; a spec is a few kilobytes of YAML:"
            " is this the right file?",
        )
    if b"\0" in data:
        raise _file_error(path, "is a binary file (it contains NUL bytes); a spec is YAML text")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        col = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        byte = data[exc.start]
        raise _file_error(
            path, f"not UTF-8 text (byte 0x{byte:02x}); save the spec as UTF-8", line, col
        ) from None
    root = _compose(path, text)
    if root is None or (root.tag == _NULL and not root.value):
        what = "empty" if not text.strip() else "empty (it holds only comments)"
        raise _file_error(path, f"spec file is {what}; etc/example.yaml shows every key")
    if not isinstance(root, MappingNode):
        raise _file_error(
            path,
            f"the spec must be a mapping of keys (name:, app:, uwsgi:, ...), not {_kind(root)}",
            root.start_mark.line + 1,
            root.start_mark.column + 1,
        )
    return text, root


def _read_capped(path: Path) -> bytes:
    """The file's bytes, but never more than one past the cap (a 24 MB file must
    not grow the supervisor by hundreds of MiB while it is parsed)."""
    with open(path, "rb") as f:
        return f.read(MAX_SPEC_BYTES + 1)


def _kind(node: Node) -> str:
    return "a list" if isinstance(node, SequenceNode) else f"a single value ({node.value!r})"


def _compose(path: Path, text: str) -> Optional[Node]:
    try:
        return yaml.compose(text, Loader=yaml.SafeLoader)
    except RecursionError:
        raise _file_error(path, "is nested too deeply to be a spec (thousands of levels)") from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (0, 0)
        raise _file_error(path, f"YAML syntax error: {_syntax_message(exc)}", line, col) from None
    except yaml.reader.ReaderError as exc:
        # Control characters: position is an index into the text.
        before = text[: exc.position]
        line = before.count("\n") + 1
        col = exc.position - (before.rfind("\n") + 1) + 1
        char = exc.character if isinstance(exc.character, int) else ord(exc.character)
        message = f"YAML syntax error: unacceptable character #x{char:04x} ({exc.reason})"
        raise _file_error(path, message, line, col) from None


def _syntax_message(exc: yaml.MarkedYAMLError) -> str:
    problem = exc.problem or exc.context or "unknown error"
    if "'\\t'" in problem:
        return f"{problem} (YAML does not allow tabs for indentation; indent with spaces)"
    if problem == "but found another document":
        return "found a second document ('---'); a spec is one YAML document"
    if exc.context and exc.context_mark and exc.context_mark is not exc.problem_mark:
        mark = exc.context_mark
        return f"{problem} ({exc.context} at line {mark.line + 1}, column {mark.column + 1})"
    return problem


class Report:
    """The problems found in one spec file, each placed at a node."""

    def __init__(self, path: Path, text: str) -> None:
        self.path = path
        self.lines = _LINE_BREAK.split(text)
        self.problems: list[Problem] = []

    def add(self, node: Node, key: str, message: str) -> None:
        mark = node.start_mark
        source = self.lines[mark.line] if mark.line < len(self.lines) else ""
        self.problems.append(
            Problem(self.path, mark.line + 1, mark.column + 1, key, message, source)
        )

    def raise_if_any(self) -> None:
        if self.problems:
            raise SpecError(sorted(self.problems, key=lambda p: (p.line, p.col)))
