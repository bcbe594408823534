"""From file changes to a reload request: watcher -> debounce -> the gate.

Lives in the loop's thread. The watcher's observer thread only records
changes and wakes the loop; `tick(now)` does the rest. Every change also
tells the gate at once, so an import check under way no longer counts for
a tree that moved on; a settled batch becomes one reload request, which the
gate checks and hands to the machine.
"""

from __future__ import annotations

from typing import Callable, Optional

from supervisor.codepush.debounce import Debouncer
from supervisor.codepush.gate import Gate
from supervisor.codepush.watcher import CodeWatcher
from supervisor.spec.model import LiveSpec, ReloadMode, Spec


class CodePush:
    def __init__(
        self,
        live: LiveSpec,
        gate: Gate,
        log: Callable[[str], None],
        wake: Callable[[], None],
    ) -> None:
        spec = live.spec
        self.live = live
        self.gate = gate
        self.log = log
        self.debouncer = Debouncer(spec.watch.debounce, spec.watch.max_wait)
        ignore = [spec.runtime_dir]
        if spec.logto is not None:
            ignore.append(spec.logto.parent)
        self.watcher = CodeWatcher(
            paths=list(spec.watch_paths),
            include=spec.watch.include,
            exclude=spec.watch.exclude,
            ignore=ignore,
            poll=spec.watch.poll,
            wake=wake,
            log=log,
        )

    @property
    def spec(self) -> Spec:
        return self.live.spec

    @property
    def mode(self) -> ReloadMode:
        return self.spec.watch.reload

    def start(self) -> None:
        self.watcher.start()
        targets = ", ".join(str(p) for p in self.watcher.resolved_targets())
        self.log(f"watching {targets} ({self.watcher.backend}) for code pushes")

    def stop(self) -> None:
        self.watcher.stop()

    def deadline(self) -> Optional[float]:
        """When the pending batch settles (None: nothing pending)."""
        return self.debouncer.deadline()

    def tick(self, now: float) -> None:
        changes = self.watcher.drain()
        if changes:
            self.debouncer.add(now, changes)
            self.gate.tree_changed(now)
        if self.debouncer.due(now):
            self.gate.request(now, self.mode, self.debouncer.take().reason)


def start_watching(
    live: LiveSpec,
    gate: Gate,
    info: Callable[[str], None],
    error: Callable[[str], None],
    wake: Callable[[], None],
) -> tuple[Optional[CodePush], Optional[str]]:
    """A started CodePush, or None and why watching failed (logged): serving
    matters more than auto-reload, so the app runs on without it."""
    codepush = CodePush(live, gate, info, wake)
    try:
        codepush.start()
    except Exception as exc:
        codepush.stop()
        why = f"not watching for code pushes: {exc}"
        error(f"{why}; serving without auto-reload")
        return None, why
    return codepush, None
