"""SIGHUP: the spec file is read again off the loop's thread.

Parsing a large spec (up to the loader's 1 MiB cap) in the loop would stall
watchdog pings and stats polling; a thread reads it and wakes the loop, which
applies the result. Any failure while reading (a spec error, a permission
error, a recursion error from a hostile file) keeps the running config: it
comes back as the exception, never raised in the loop.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Callable, Optional, Union

from supervisor.spec.load import load_spec
from supervisor.spec.model import Spec

Outcome = Union[Spec, Exception]


class SpecRereader:
    def __init__(self, path: Path, wake: Callable[[], None]) -> None:
        self.path = path
        self.wake = wake
        self._thread: Optional[threading.Thread] = None
        self._outcome: Optional[Outcome] = None
        self._again = False  # another SIGHUP came while reading: read once more

    def start(self) -> None:
        if self._thread is not None:
            self._again = True  # the file may have changed after the read began
            return
        self._outcome = None
        self._thread = threading.Thread(target=self._read, name="spec-reread", daemon=True)
        self._thread.start()

    def _read(self) -> None:
        try:
            # A deploy in progress (the app tree missing) is no spec error.
            self._outcome = load_spec(self.path, tree=False)
        except Exception as exc:  # anything: the loop keeps the running config
            self._outcome = exc
        finally:
            self.wake()

    def take(self) -> Optional[Outcome]:
        """The outcome of a finished read (once), else None."""
        thread = self._thread
        if thread is None or thread.is_alive():
            return None
        thread.join()
        self._thread = None
        outcome, self._outcome = self._outcome, None
        if self._again:
            self._again = False
            self.start()
            return None  # only the newest read counts
        return outcome


def unappliable(old: Spec, new: Spec) -> Optional[str]:
    """Why `new` cannot replace `old` without a restart of the service (None: it can)."""
    if new.runtime_dir != old.runtime_dir or new.name != old.name:
        return (
            f"SIGHUP: {old.path}: name or runtime_dir changed; that takes a restart"
            " of the service (systemctl restart), keeping the running config"
        )
    return None
