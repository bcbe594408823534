"""The watcher's parts that hold no logic of their own: which events count,
the per-path record, watchdog's event handler, and small helpers.

See `watcher.py` for how they fit together (and which thread runs what).
"""

from __future__ import annotations

import os
import traceback
from typing import Callable, Optional, Protocol

from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers.api import BaseObserver, ObservedWatch

from supervisor.codepush.debounce import Change

# watchdog event types that count, and the kind of Change each becomes. The
# rest never count: "opened" and "closed_no_write" (importing the app opens
# files), "attrib" (chmod, touch's utimes: content changes come with a write).
COUNTED_EVENTS = {
    "modified": "modified",
    "closed": "modified",  # close after write
    "created": "created",
    "deleted": "deleted",
    "moved": "moved",
}
# Events on an anchor directory that may mean a flip of one of its entries.
ANCHOR_EVENTS = frozenset({"created", "deleted", "moved", "modified", "attrib"})
RECONCILE_PASSES = 5  # re-resolve until two passes agree, at most this often
POLL_INTERVAL = 1.0  # seconds between snapshots when polling



class EventSink(Protocol):
    """The watcher's side that watchdog's threads call into (see CodeWatcher)."""

    def _on_tree_event(self, handler: Handler, event: FileSystemEvent) -> None: ...
    def _on_anchor_event(self, handler: Handler, event: FileSystemEvent) -> None: ...
    def _record(
        self,
        change: Optional[Change] = None,
        message: Optional[str] = None,
        limit: Optional[int] = None,
    ) -> None: ...


ObserverFactory = Callable[[], BaseObserver]


class Root:
    """One configured watch path and the directory it led to when last resolved."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.target: Optional[str] = None
        self.ident: Optional[tuple[int, int]] = None
        self.lost = False  # the target vanished: its reappearance is a release


class Handler(FileSystemEventHandler):
    """Hands watchdog's events to the watcher; `dead` once its directory is gone."""

    def __init__(self, watcher: EventSink, directory: str, tree: bool) -> None:
        self.watcher = watcher
        self.directory = directory
        self.tree = tree
        self.dead = False

    def dispatch(self, event: FileSystemEvent) -> None:
        # Runs in watchdog's observer thread: an exception would end that thread
        # and with it all watching, so record it for the loop to log instead.
        try:
            if self.tree:
                self.watcher._on_tree_event(self, event)
            else:
                self.watcher._on_anchor_event(self, event)
        except Exception:
            self.watcher._record(
                message=f"code watcher: error on {event!r}: {traceback.format_exc()}"
            )


def ident(path: str) -> Optional[tuple[int, int]]:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_dev, st.st_ino)


def unschedule(observer: BaseObserver, watch: ObservedWatch) -> None:
    try:
        observer.unschedule(watch)
    except KeyError:  # already gone with its emitter
        pass


def coalesce(changes: list[Change]) -> list[Change]:
    """One Change per path, in first-seen order; a plain "modified" never hides another kind."""
    by_path: dict[str, Change] = {}
    for change in changes:
        if change.path not in by_path or change.kind != "modified":
            by_path[change.path] = change
    return list(by_path.values())
