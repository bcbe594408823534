"""Which paths count as a code change, and where a watch path really leads.

Pure path logic for `watch.py`, no threads and no watchdog: the glob filter,
and a step-by-step symlink resolution that also reports every directory entry
whose replacement would change the answer (the deploy symlink `current`, a
missing component, the target itself).
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Sequence
from dataclasses import dataclass
from fnmatch import translate
from typing import Optional

from supervisor.spec.model import NEVER_WATCHED

MAX_SYMLINK_HOPS = 40  # as the kernel's ELOOP limit


def _compile(patterns: Sequence[str]) -> Optional[re.Pattern[str]]:
    if not patterns:
        return None
    return re.compile("|".join(translate(p) for p in patterns))


class PathFilter:
    """Decides whether a file, named relative to its watched root, is code.

    A glob matches the relative path or any tail of it ("*.py" matches
    "pkg/a.py", "__pycache__/*" matches "pkg/__pycache__/a.pyc"); an exclude
    glob also matches any single directory component (".*" excludes
    ".git/config", "node_modules" excludes "node_modules/x/y.js"). Exclude always
    wins. An empty include list counts every file that is not excluded.
    """

    def __init__(self, include: Sequence[str], exclude: Sequence[str]) -> None:
        self._include = _compile(include)
        self._exclude = _compile(tuple(dict.fromkeys((*NEVER_WATCHED, *exclude))))

    def counts(self, rel: str) -> bool:
        """True if a change to `rel` (relative, '/'-separated) is a code change."""
        parts = rel.split("/")
        tails = ["/".join(parts[i:]) for i in range(len(parts))]
        exclude = self._exclude
        if exclude is not None and any(exclude.match(s) for s in tails + parts[:-1]):
            return False
        include = self._include
        return include is None or any(include.match(s) for s in tails)


@dataclass(frozen=True)
class Resolution:
    """Where a watch path leads now.

    target: the real directory, or None if the path is missing, dangling, or
    not a directory. ident: (st_dev, st_ino) of the target, so a directory
    replaced under the same name is noticed. anchors: (real parent directory,
    entry name) pairs whose creation, removal or replacement can change the
    answer: every symlink followed, the first missing component, the target.
    """

    target: Optional[str]
    ident: Optional[tuple[int, int]]
    anchors: tuple[tuple[str, str], ...]


def resolve(path: str) -> Resolution:
    """Follow `path` (absolute) one component at a time, as the kernel does."""
    anchors: list[tuple[str, str]] = []
    pending = [p for p in path.split("/") if p]
    current = "/"
    hops = 0
    while pending:
        name = pending.pop(0)
        if name == ".":
            continue
        if name == "..":
            current = os.path.dirname(current)
            continue
        candidate = os.path.join(current, name)
        try:
            st = os.lstat(candidate)
        except OSError:  # missing, or a component is not a directory
            anchors.append((current, name))
            return Resolution(None, None, tuple(anchors))
        if not stat.S_ISLNK(st.st_mode):
            current = candidate
            continue
        anchors.append((current, name))
        hops += 1
        try:
            link = os.readlink(candidate)
        except OSError:  # replaced between lstat and readlink: the anchor covers it
            return Resolution(None, None, tuple(anchors))
        if hops > MAX_SYMLINK_HOPS:
            return Resolution(None, None, tuple(anchors))
        if link.startswith("/"):
            current = "/"
        pending[:0] = [p for p in link.split("/") if p]
    if current != "/":
        anchors.append((os.path.dirname(current), os.path.basename(current)))
    try:
        st = os.stat(current)
    except OSError:
        return Resolution(None, None, tuple(anchors))
    if not stat.S_ISDIR(st.st_mode):
        return Resolution(None, None, tuple(anchors))
    return Resolution(current, (st.st_dev, st.st_ino), tuple(anchors))


def is_under(path: str, directory: str) -> bool:
    """True if `path` is `directory` or inside it (both absolute, normalised)."""
    return path == directory or path.startswith(directory.rstrip("/") + "/")
