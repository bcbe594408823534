"""From file changes to a reload: watcher -> debounce -> preflight -> machine.

Lives in the loop's thread. The watcher's observer thread only records
changes and wakes the loop; `tick(now)` does the rest. The import check's
end wakes the loop through SIGCHLD, so nothing here needs polling.
"""

from __future__ import annotations

from typing import Callable, Optional

from supervisor.codepush.debounce import Batch, Debouncer
from supervisor.codepush.preflight import Preflight
from supervisor.codepush.watcher import CodeWatcher
from supervisor.lifecycle.machine import Machine
from supervisor.lifecycle.states import State
from supervisor.spec.model import LiveSpec, ReloadMode, Spec
from supervisor.uwsgi.command import write_entry


class CodePush:
    def __init__(
        self,
        live: LiveSpec,
        machine: Machine,
        log: Callable[[str], None],
        wake: Callable[[], None],
    ) -> None:
        spec = live.spec
        self.live = live
        self.machine = machine
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
        self.preflight = Preflight()
        self.checking: Optional[Batch] = None
        self.refused: Optional[str] = None

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
        self.preflight.cancel()
        self.watcher.stop()

    def deadline(self) -> Optional[float]:
        """When `tick` has something to do, if nothing wakes the loop first.

        Never a time that has passed while nothing can be done: a running
        import check ends with SIGCHLD (so only its timeout is a deadline),
        and changes that wait for a reload or start to finish wait for the
        machine's next state, which the loop's own stats polling brings.
        """
        if self.preflight.running:
            return self.preflight.deadline
        if self.debouncer.pending and not self._can_act():
            return None
        return self.debouncer.deadline()

    def _can_act(self) -> bool:
        return self.machine.state in (State.RUNNING, State.BACKOFF)

    def tick(self, now: float) -> None:
        changes = self.watcher.drain()
        if changes:
            self.debouncer.add(now, changes)
        if self.preflight.running:
            self._finish_preflight(now)
            return
        if not self.debouncer.due(now):
            return
        state = self.machine.state
        if state is State.BACKOFF:
            # uWSGI is down anyway: starting it is the check.
            self.machine.request_reload(now, self.mode, self.debouncer.take().reason)
        elif state is State.RUNNING:
            batch = self.debouncer.take()
            # A swap's new master is itself a full import check, under uWSGI:
            # it replaces the old one only once every worker serves.
            if self.spec.watch.preflight and self.mode is not ReloadMode.SWAP:
                self._check(now, batch)
            else:
                self.machine.request_reload(now, self.mode, batch.reason)
        # STARTING, RELOADING, STOPPING: keep collecting; one reload follows.

    def _check(self, now: float, batch: Batch) -> None:
        """Start the import check of the tree as it is now."""
        try:
            write_entry(self.spec)
            self.preflight.start(now, self.spec)
        except OSError as exc:
            # A deploy that removed the app's directory, a full disk: nothing
            # to reload onto yet. Keep serving; the next change tries again.
            self.refused = f"reload refused: cannot run the import check: {exc}"
            self.log(f"{self.refused} ({batch.reason}); the running code keeps serving")
            return
        self.checking = batch

    def _finish_preflight(self, now: float) -> None:
        result = self.preflight.poll(now)
        if result is None:
            return
        batch, self.checking = self.checking, None
        assert batch is not None
        if result.ok:
            self.refused = None
            if self.machine.state is State.RUNNING:
                self.machine.request_reload(now, self.mode, batch.reason)
            else:
                self.debouncer.add(now, [batch.first])  # try once uWSGI is back
            return
        self.refused = f"reload refused: {result.summary}"
        self.log(
            f"{self.refused} ({batch.reason}); the running code keeps serving."
            f" Import check output:\n{result.output.rstrip()}"
        )
