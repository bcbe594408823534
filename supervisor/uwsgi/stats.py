"""Read a uWSGI master's stats socket (one JSON document per connection)."""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path
from typing import Any, Optional

from supervisor.lifecycle.samples import Stats, Worker


def parse_stats(doc: dict[str, Any]) -> Stats:
    workers = tuple(
        Worker(
            id=int(w.get("id", 0)),
            pid=int(w.get("pid", 0)),
            accepting=bool(w.get("accepting", 0)),
            status=str(w.get("status", "")),
            requests=int(w.get("requests", 0)),
            exceptions=int(w.get("exceptions", 0)),
            rss=int(w.get("rss", 0)),
            last_spawn=int(w.get("last_spawn", 0)),
            respawn_count=int(w.get("respawn_count", 0)),
            apps=len(w.get("apps") or ()),
        )
        for w in doc.get("workers", ())
    )
    return Stats(
        pid=int(doc.get("pid", 0)),
        version=str(doc.get("version", "")),
        listen_queue=int(doc.get("listen_queue", 0)),
        workers=workers,
        doc=doc,
    )


def read_stats_raw(path: Path, timeout: float = 1.0) -> Optional[dict[str, Any]]:
    """One JSON document from the stats socket, or None if uWSGI does not answer.

    A stopped (SIGSTOPped) master accepts in the kernel backlog but never
    writes: the timeout turns that into None, which is what the watchdog needs.
    """
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    chunks: list[bytes] = []
    deadline = time.monotonic() + timeout
    try:
        sock.connect(str(path))
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            sock.settimeout(remaining)
            chunk = sock.recv(65536)
            if not chunk:
                break
            chunks.append(chunk)
    except OSError:
        return None
    finally:
        sock.close()
    try:
        doc = json.loads(b"".join(chunks).decode("utf-8", "replace"))
    except ValueError:
        return None
    return doc if isinstance(doc, dict) else None


def read_stats(path: Path, timeout: float = 1.0) -> Optional[Stats]:
    doc = read_stats_raw(path, timeout)
    return None if doc is None else parse_stats(doc)
