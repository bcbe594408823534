"""One summarizer of why uWSGI (or an import check of the app) failed.

Crash STATUS lines, import-check refusals and swap refusals all say the
same thing for the same error: "ModuleNotFoundError in blog.py line 3: No
module named 'flask_login'".
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Optional

_HEADER = "Traceback (most recent call last)"
_FRAME = re.compile(r'^\s*File "(?P<file>[^"]+)", line (?P<line>\d+)')
_EXC = re.compile(r"^(?P<name>[A-Za-z_][\w.]*)(: (?P<msg>.*))?$")
# Without a traceback: a line that names an error, e.g. "OSError: cannot start ...".
_ERROR_LINE = re.compile(r"^\s*([A-Za-z_][\w.]*(Error|Exception|Exit)\b.*)$")
# Failing that: uWSGI's own words for trouble, e.g. "bind(): Address already in use".
_HINT = re.compile(r"in use|denied|cannot|unable|no such|not found|invalid|unknown|no app", re.I)
MAX_LENGTH = 240


def summarize_failure(lines: Iterable[str], chdir: Optional[Path] = None) -> Optional[str]:
    """'ExcName in file.py line N: message' from the last traceback in `lines`.

    The location is the deepest frame in the app's own code (under `chdir`).
    Without a traceback, the last line naming an error, else the last line
    uWSGI uses for trouble; None if nothing tells.
    """
    text = [line.rstrip("\n") for line in lines]
    summary = traceback_summary(text, chdir)
    if summary is not None:
        return summary
    for line in reversed(text):
        match = _ERROR_LINE.match(line)
        if match:
            return match.group(1).strip()[:MAX_LENGTH]
    for line in reversed(text):
        if _HINT.search(line):
            return line.strip()[:MAX_LENGTH]
    return None


def traceback_summary(lines: Iterable[str], chdir: Optional[Path] = None) -> Optional[str]:
    """summarize_failure's answer from the last complete traceback in `lines`, else None.

    Workers write to one log, a line at a time, so under load a traceback
    can have other workers' lines inside it: their request lines, their own
    tracebacks. Lines that cannot be part of a traceback are passed over,
    and an exception line counts only after a frame: Python always prints
    at least one. A traceback with no end yet gives way to the one before.
    """
    text = [line.rstrip("\n") for line in lines]
    roots = _roots(chdir)  # once: it resolves chdir on the filesystem
    for start in _tracebacks(text):
        summary = _from_traceback(text[start + 1 :], roots)
        if summary is not None:
            return summary[:MAX_LENGTH]
    return None


def _tracebacks(lines: list[str]) -> Iterator[int]:
    """Where each traceback starts, the last first."""
    for i in range(len(lines) - 1, -1, -1):
        if lines[i].startswith(_HEADER):
            yield i


def _from_traceback(body: list[str], roots: list[str]) -> Optional[str]:
    where: Optional[str] = None  # None until a frame: "" for frames outside the app
    for line in body:
        frame = _FRAME.match(line)
        if frame is not None:
            rel = _relative(frame.group("file"), roots)
            if rel is not None:
                where = f" in {rel} line {frame.group('line')}"
            elif where is None:
                where = ""
            continue
        if not line or line[0].isspace():
            continue  # source lines and carets of the frames
        match = _EXC.match(line)
        if match is None or where is None:
            continue  # another worker's line, or an exception line of one begun earlier
        msg = match.group("msg")
        return f"{match.group('name')}{where}" + (f": {msg}" if msg else "")
    return None


def _roots(chdir: Optional[Path]) -> list[str]:
    if chdir is None:
        return []
    roots = [str(chdir)]
    try:
        resolved = str(chdir.resolve())
    except OSError:  # a deploy may have removed it meanwhile
        return roots
    return [resolved, *roots] if resolved not in roots else roots


def _relative(path: str, roots: list[str]) -> Optional[str]:
    for root in roots:
        if path == root or path.startswith(root.rstrip("/") + "/"):
            return os.path.relpath(path, root)
    return None
