"""The tiny watcher users write: on a .py change, write `r` to uWSGI's master FIFO.

Usage: python inotify_reload.py APP_DIR MASTER_FIFO. Throttled to one `r` per
0.5 s (an in-place save is two events); no debounce, no import check.
"""

from __future__ import annotations

import os
import sys
import time

from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer

LIFETIME = 3600.0  # a benchmark never needs it longer


class Reload(FileSystemEventHandler):
    def __init__(self, fifo: str) -> None:
        self.fifo = fifo
        self.last = 0.0

    def on_any_event(self, event: FileSystemEvent) -> None:
        if event.event_type not in ("modified", "created", "moved"):
            return
        path = str(getattr(event, "dest_path", "") or event.src_path)
        if not path.endswith(".py") or "__pycache__" in path:
            return
        if time.monotonic() - self.last < 0.5:
            return
        self.last = time.monotonic()
        try:
            fd = os.open(self.fifo, os.O_WRONLY | os.O_NONBLOCK)
            os.write(fd, b"r")
            os.close(fd)
        except OSError:
            pass  # uWSGI between execs: this reload is lost, as it is for users


def main() -> None:
    app_dir, fifo = sys.argv[1], sys.argv[2]
    observer = Observer()
    observer.schedule(Reload(fifo), app_dir, recursive=True)
    observer.start()
    print("armed", flush=True)
    deadline = time.monotonic() + LIFETIME
    while observer.is_alive() and time.monotonic() < deadline:
        time.sleep(0.5)
    observer.stop()


if __name__ == "__main__":
    main()
