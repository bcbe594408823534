"""A fingerprint of the app's code as it is on disk: which tree a verdict is for.

A push that was refused (import check, health check) or rolled back is
quarantined by its fingerprint: asking again for the same tree is answered
at once, without another candidate, until the tree changes.
"""

from __future__ import annotations

import hashlib
import os
from typing import Optional

from supervisor.codepush.paths import PathFilter
from supervisor.spec.model import Spec

MOST_FILES = 200_000  # past this, no fingerprint (and no quarantine): too slow to take


def tree_fingerprint(spec: Spec) -> Optional[str]:
    """A digest of every code file's path, size and mtime; None if it cannot be had."""
    counts = PathFilter(spec.watch.include, spec.watch.exclude).counts
    digest = hashlib.sha256()
    seen = 0
    try:
        for root in spec.watch_paths:
            digest.update(os.path.realpath(root).encode(errors="surrogateescape") + b"\0")
            for folder, dirs, files in os.walk(root, followlinks=False):
                dirs.sort()
                rel_folder = os.path.relpath(folder, root)
                for name in sorted(files):
                    rel = name if rel_folder == "." else f"{rel_folder}/{name}"
                    if not counts(rel):
                        continue
                    seen += 1
                    if seen > MOST_FILES:
                        return None
                    st = os.stat(os.path.join(folder, name))
                    line = f"{rel}\0{st.st_size}\0{st.st_mtime_ns}\n"
                    digest.update(line.encode(errors="surrogateescape"))
    except OSError:
        return None
    return digest.hexdigest()
