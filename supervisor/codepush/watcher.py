"""Watch the app's code: watchdog observer, filtering, symlink-flip detection.

Threads. watchdog's threads only record: a Change (or a log line) goes into a
buffer and `wake()` is called once per empty-to-non-empty step; the loop calls
`drain()`, which also writes the recorded log lines, so `log` is only ever
called from the loop's thread. One thing happens off the loop's thread: when a
deploy symlink flips, the observer thread moves the recursive watch to the new
release at once, so edits made right after the flip are not lost while the
loop is busy. Falling back to polling always happens in the loop's thread.

Symlinks. A recursive watch on `/srv/app/current` follows the link into
`releases/1` and sees nothing when `current` is replaced. So every watch path
is resolved one component at a time (`watchpaths.resolve`) and the parent
directory of every entry that matters (each symlink followed, the first missing
component, the target itself) gets a non-recursive "anchor" watch. An anchor
event naming such an entry re-resolves everything; a different target, or the
same path now holding a different directory, moves the recursive watch and is
reported as Change(kind="release", path=new target).
"""

from __future__ import annotations

import errno
import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Callable, Optional

from watchdog.events import FileSystemEvent
from watchdog.observers.api import BaseObserver, ObservedWatch
from watchdog.observers.polling import PollingObserver

from supervisor.codepush.debounce import Change
from supervisor.codepush.inotify_limits import is_limit_error, limit_message, watch_limit_reached
from supervisor.codepush.paths import PathFilter, Resolution, is_under, resolve
from supervisor.codepush.watches import (
    ANCHOR_EVENTS,
    COUNTED_EVENTS,
    POLL_INTERVAL,
    RECONCILE_PASSES,
    Handler,
    ObserverFactory,
    Root,
    coalesce,
    unschedule,
)
from supervisor.codepush.watches import ident as dir_ident

__all__ = ["Change", "CodeWatcher"]

class CodeWatcher:
    """Reports changes to the app's code; see the module docstring for the threads."""

    def __init__(
        self,
        paths: Sequence[Path],
        include: Sequence[str],
        exclude: Sequence[str],
        ignore: Sequence[Path],
        poll: bool,
        wake: Callable[[], None],
        log: Callable[[str], None],
        *,
        observer_factory: Optional[ObserverFactory] = None,
        poll_interval: float = POLL_INTERVAL,
    ) -> None:
        if not paths:
            raise ValueError("CodeWatcher needs at least one path to watch")
        unique = dict.fromkeys(os.path.abspath(os.fspath(p)) for p in paths)
        self._roots = [Root(p) for p in unique]
        self._filter = PathFilter(include, exclude)
        self._ignore = tuple(os.path.abspath(os.fspath(p)) for p in ignore)
        self._ignored: tuple[str, ...] = ()
        self._poll = poll
        self._wake = wake
        self._log = log
        self._observer_factory = observer_factory
        self._poll_interval = poll_interval
        self._backend = "polling" if poll else "inotify"
        self._observer: Optional[BaseObserver] = None
        self._stopped = True
        # Armed watches, guarded by _arm_lock: real directory -> (watch, handler).
        self._trees: dict[str, tuple[ObservedWatch, Handler, Optional[tuple[int, int]]]] = {}
        self._anchors: dict[str, tuple[ObservedWatch, Handler]] = {}
        self._anchor_names: dict[str, frozenset[str]] = {}  # replaced whole, read unlocked
        self._arm_lock = threading.Lock()
        self._reconcile_wanted = False
        # Recorded by watchdog's threads, handed to the loop by drain().
        self._buffer_lock = threading.Lock()
        self._changes: list[Change] = []
        self._messages: list[str] = []
        self._limit_errno: Optional[int] = None

    # -- the loop's side ---------------------------------------------------

    @property
    def backend(self) -> str:
        """The mechanism in use: "inotify" or "polling"."""
        return self._backend

    def start(self) -> None:
        """Arm the watches; returns once they are armed (or polling took over)."""
        self._stopped = False
        if self._poll:
            self._arm(PollingObserver(timeout=self._poll_interval))
        else:
            try:
                self._arm(self._inotify_observer())
            except OSError as exc:
                if not is_limit_error(exc):
                    raise
                self._record(limit=exc.errno)
        self._service()

    def stop(self) -> None:
        """Stop watching and join watchdog's threads."""
        self._stopped = True
        self._shut_down()
        self._service()

    def drain(self) -> list[Change]:
        """Changes recorded since the last drain, one per path, oldest first."""
        with self._buffer_lock:
            changes, self._changes = self._changes, []
        self._service()
        return coalesce(changes)

    def resolved_targets(self) -> list[Path]:
        """The real directories watched recursively now, in watch-path order."""
        with self._arm_lock:
            targets = [r.target for r in self._roots if r.target in self._trees]
        return [Path(t) for t in dict.fromkeys(t for t in targets if t is not None)]

    def _inotify_observer(self) -> BaseObserver:
        if self._observer_factory is not None:
            return self._observer_factory()
        from watchdog.observers.inotify import InotifyObserver

        return InotifyObserver()

    def _arm(self, observer: BaseObserver) -> None:
        self._observer = observer
        observer.start()
        self._request_reconcile(blocking=True)

    def _shut_down(self) -> None:
        observer, self._observer = self._observer, None
        if observer is not None:
            observer.stop()
            if observer.is_alive():
                observer.join()
        with self._arm_lock:  # the observer thread is gone: nothing re-arms now
            self._trees.clear()
            self._anchors.clear()

    def _service(self) -> None:
        """Write the recorded log lines; fall back to polling if inotify ran out;
        re-arm if watchdog's thread died (auto-reload must not stop silently)."""
        with self._buffer_lock:
            messages, self._messages = self._messages, []
            err, self._limit_errno = self._limit_errno, None
        for message in messages:
            self._log(message)
        observer = self._observer
        if not self._stopped and observer is not None and not observer.is_alive():
            self._log(f"code watcher: its {self._backend} thread ended unexpectedly; re-arming")
            self._shut_down()
            if self._backend == "inotify":
                self._arm(self._inotify_observer())
            else:
                self._arm(PollingObserver(timeout=self._poll_interval))
        if err is None or self._stopped or self._backend != "inotify":
            return
        self._log(limit_message(err, ", ".join(r.path for r in self._roots)))
        self._shut_down()
        self._backend = "polling"
        with self._buffer_lock:  # anything the old observer noted while stopping
            self._limit_errno = None
        self._arm(PollingObserver(timeout=self._poll_interval))
        self._service()

    # -- recording (any thread) ----------------------------------------------

    def _record(
        self,
        change: Optional[Change] = None,
        message: Optional[str] = None,
        limit: Optional[int] = None,
    ) -> None:
        """Buffer something for the loop; wake it if the buffer was empty."""
        with self._buffer_lock:
            idle = not self._changes and not self._messages and self._limit_errno is None
            if change is not None:
                self._changes.append(change)
            if message is not None:
                self._messages.append(message.rstrip())
            if limit is not None and self._backend == "inotify":
                self._limit_errno = limit
        if idle:
            try:
                self._wake()
            except Exception:  # the loop is gone or its pipe is full: it drains anyway
                pass

    # -- watchdog's threads ----------------------------------------------------

    def _on_tree_event(self, handler: Handler, event: FileSystemEvent) -> None:
        if self._stopped:
            return
        src = os.fsdecode(event.src_path)
        if event.is_directory:  # directory events never count; their files do
            if event.event_type == "deleted" and src == handler.directory:
                handler.dead = True  # watchdog stopped this watch
                self._request_reconcile(blocking=False)
            return
        kind = COUNTED_EVENTS.get(event.event_type)
        if kind is None:
            return
        candidates = [src]
        if event.event_type == "moved":  # saved via rename: the destination names the file
            candidates.insert(0, os.fsdecode(event.dest_path))
        for path in candidates:
            rel = self._counted_rel(handler.directory, path)
            if rel is not None:
                self._record(Change(path=path, kind=kind, rel=rel))
                return

    def _counted_rel(self, root: str, path: str) -> Optional[str]:
        """`path` relative to `root` if a change to it counts, else None."""
        prefix = root.rstrip("/") + "/"
        if not path.startswith(prefix):
            return None
        if any(is_under(path, d) for d in self._ignored):
            return None
        rel = path[len(prefix) :]
        return rel if rel and self._filter.counts(rel) else None

    def _on_anchor_event(self, handler: Handler, event: FileSystemEvent) -> None:
        if self._stopped:
            return
        src = os.fsdecode(event.src_path)
        if event.event_type == "deleted" and src == handler.directory:
            handler.dead = True
            self._request_reconcile(blocking=False)
            return
        if event.event_type not in ANCHOR_EVENTS:
            return
        names = self._anchor_names.get(handler.directory, frozenset())
        anchored = {(handler.directory, name) for name in names}
        for path in (src, os.fsdecode(event.dest_path)):
            if path and os.path.split(path) in anchored:
                self._request_reconcile(blocking=False)
                return

    # -- arming: whichever thread asks first does it -----------------------------

    def _request_reconcile(self, blocking: bool) -> None:
        """Re-resolve the watch paths and move watches to match.

        The observer thread calls this while holding watchdog's lock, and
        arming takes that lock: so it never waits for `_arm_lock` but leaves
        the request for the thread holding it, which re-checks the flag after
        releasing.
        """
        self._reconcile_wanted = True
        while self._reconcile_wanted:
            if not self._arm_lock.acquire(blocking=blocking):
                return
            try:
                while self._reconcile_wanted:
                    self._reconcile_wanted = False
                    self._reconcile()
            finally:
                self._arm_lock.release()

    def _reconcile(self) -> None:
        for _ in range(RECONCILE_PASSES):
            observer = self._observer
            if observer is None or self._stopped:
                return
            plans = [resolve(root.path) for root in self._roots]
            self._ignored = tuple(
                dict.fromkeys(p for d in self._ignore for p in (d, os.path.realpath(d)))
            )
            armed = self._arm_anchors(observer, plans)
            armed |= self._arm_trees(observer, plans)
            if armed and self._backend == "inotify" and watch_limit_reached():
                # watchdog skips subdirectories it cannot watch without a word
                self._record(limit=errno.ENOSPC)
                return
            if [resolve(root.path) for root in self._roots] == plans:
                return

    def _arm_anchors(self, observer: BaseObserver, plans: list[Resolution]) -> bool:
        wanted: dict[str, set[str]] = {}
        for plan in plans:
            for directory, name in plan.anchors:
                wanted.setdefault(directory, set()).add(name)
        self._anchor_names = {d: frozenset(names) for d, names in wanted.items()}
        for directory, (old, handler) in list(self._anchors.items()):
            if directory not in wanted or handler.dead:
                unschedule(observer, old)
                del self._anchors[directory]
        armed = False
        for directory in wanted:
            if directory not in self._anchors:
                handler = Handler(self, directory, tree=False)
                watch = self._schedule(observer, handler, recursive=False)
                if watch is not None:
                    self._anchors[directory] = (watch, handler)
                    armed = True
        return armed

    def _arm_trees(self, observer: BaseObserver, plans: list[Resolution]) -> bool:
        for _, handler, _ in self._trees.values():
            if handler.dead:
                for root in self._roots:
                    if root.target == handler.directory:
                        self._lose(root, f"{handler.directory} was deleted")
        wanted: dict[str, Optional[tuple[int, int]]] = {}
        for root, plan in zip(self._roots, plans):
            if plan.target is None:
                if (
                    root.target is not None
                    and not root.lost
                    and dir_ident(root.target) == root.ident
                ):
                    wanted[root.target] = root.ident  # e.g. `current` is being replaced
                else:
                    self._lose(root, f"{root.path} does not lead to a directory")
                continue
            if root.target is not None and (
                root.lost or (plan.target, plan.ident) != (root.target, root.ident)
            ):
                self._record(message=f"code watcher: {root.path} now leads to {plan.target}")
                self._record(Change(path=plan.target, kind="release"))
            root.target, root.ident, root.lost = plan.target, plan.ident, False
            wanted[plan.target] = plan.ident
        for directory, (old, handler, ident) in list(self._trees.items()):
            if handler.dead or directory not in wanted or wanted[directory] != ident:
                unschedule(observer, old)
                del self._trees[directory]
        armed = False
        for directory, ident in wanted.items():
            if directory not in self._trees:
                handler = Handler(self, directory, tree=True)
                watch = self._schedule(observer, handler, recursive=True)
                if watch is not None:
                    self._trees[directory] = (watch, handler, ident)
                    armed = True
        return armed

    def _lose(self, root: Root, why: str) -> None:
        """Note once that a watch path leads nowhere; its return will be a release."""
        if not root.lost:
            root.lost = True
            self._record(message=f"code watcher: {why}; watching for {root.path} to (re)appear")

    def _schedule(
        self, observer: BaseObserver, handler: Handler, recursive: bool
    ) -> Optional[ObservedWatch]:
        try:
            return observer.schedule(handler, handler.directory, recursive=recursive)
        except OSError as exc:
            if is_limit_error(exc):
                self._record(limit=exc.errno or errno.ENOSPC)
            elif exc.errno not in (errno.ENOENT, errno.ENOTDIR):  # raced: next pass re-resolves
                self._record(message=f"code watcher: cannot watch {handler.directory}: {exc}")
            return None

