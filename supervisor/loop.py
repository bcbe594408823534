"""The supervisor's single-threaded loop: signals, uWSGI output, stats, timers.

Every decision is made here, in one thread: signal handlers and the code
watcher's thread only record and wake the loop (a self-pipe). Each turn
reads what happened, feeds it to the state machine, then hands the
machine's announcements and a snapshot to the one publisher.
"""

from __future__ import annotations

import os
import selectors
import signal
import time
import traceback
from typing import TYPE_CHECKING, Callable, Optional

from supervisor.codepush.gate import Gate
from supervisor.exitcodes import Exit
from supervisor.lifecycle.machine import Machine
from supervisor.lifecycle.states import POLLED_STATES, WAITING_STATES, State
from supervisor.logs import Logger
from supervisor.publish import Publisher, socket_docs, take_snapshot
from supervisor.respec import SpecRereader, unappliable
from supervisor.spec.model import LiveSpec, ReloadMode, Spec, runtime_paths
from supervisor.status import Snapshot, SocketDoc
from supervisor.systemd.notify import Notifier, watchdog_period
from supervisor.uwsgi.command import (
    chain_refusal,
    chain_reload_loads_new_code,
    needs_restart,
    sockets_differ,
)
from supervisor.uwsgi.controller import UwsgiController
from supervisor.uwsgi.failures import summarize_failure
from supervisor.uwsgi.health import Prober
from supervisor.uwsgi.instance import describe_exit
from supervisor.uwsgi.listeners import ListenerError, reopen
from supervisor.uwsgi.runtime import (
    AlreadyRunning,
    UnusableRuntimeDir,
    prepare_runtime_dir,
)
from supervisor.uwsgi.startup import take_over
from supervisor.verdicts import Verdicts

if TYPE_CHECKING:
    from supervisor.codepush.glue import CodePush

STATS_FAST = 0.05  # while starting or reloading: readiness is noticed this soon
STATS_SLOW = 1.0  # while running: also the watchdog's evidence of life
OUTPUT_POLL = 0.2  # how often uWSGI's log file is tailed into ours
RETIRE_POLL = 0.05  # how often a master retiring after a swap is checked on
LONGEST_SLEEP = 1.0
# A master that lost its stats socket is replaced through a swap, tried at
# most this often (a swap onto code that no longer starts keeps the old one).
REPAIR_EVERY = 30.0


class Loop:
    def __init__(self, spec: Spec, log: Logger) -> None:
        self.live = LiveSpec(spec)
        self.log = log
        self.notifier = Notifier()
        self.controller = UwsgiController(self.live, log.info)
        self.machine = Machine(self.live, self.controller, log.info)
        # Every reload passes the gate: code pushes, `reload`, SIGHUP, SIGUSR1/2.
        self.verdicts = Verdicts()
        self.gate = Gate(
            self.live,
            self.machine,
            log.info,
            lambda seqs: self.verdicts.forwarded(
                seqs, self.machine.generation, self.machine.rollbacks
            ),
            self.verdicts.refused,
        )
        self.publisher = Publisher(
            self.notifier, lambda: runtime_paths(self.spec).state, log.error
        )
        self.sel = selectors.DefaultSelector()
        self.signals: list[int] = []
        self.wake_r, self.wake_w = os.pipe()
        self.last_stats_poll = 0.0
        self.watchdog = watchdog_period(os.environ)
        self.next_watchdog = 0.0
        self.codepush: Optional[CodePush] = None  # when watch.enabled
        self.sockets: tuple[SocketDoc, ...] = ()  # sampled with the stats
        self.watch_error: Optional[str] = None
        self.rereader = SpecRereader(spec.path, self.wake)
        self.prober = Prober(self.wake, log.info)  # health checks, on a thread
        self.next_repair = 0.0
        # What each signal does; handlers only record, this runs in the loop.
        self.on_signal: dict[signal.Signals, Callable[[float], None]] = {
            signal.SIGTERM: lambda now: self._stop_signal(now, "SIGTERM"),
            signal.SIGINT: lambda now: self._stop_signal(now, "SIGINT"),
            signal.SIGHUP: self._reread_spec,
            signal.SIGUSR1: lambda now: self._signal_reload(now, self.spec.watch.reload),
            signal.SIGUSR2: lambda now: self._signal_reload(now, ReloadMode.CHAIN),
            signal.SIGCHLD: lambda now: None,  # only wakes the loop: exits are polled
        }

    @property
    def spec(self) -> Spec:
        return self.live.spec

    # -- signal plumbing: handlers only record -----------------------------------

    def _on_signal(self, signum: int, frame: object) -> None:
        """Signal handler - no logging, no decisions: just record it."""
        self.signals.append(signum)

    def install_signals(self) -> None:
        for fd in (self.wake_r, self.wake_w):
            os.set_blocking(fd, False)
        signal.set_wakeup_fd(self.wake_w, warn_on_full_buffer=False)
        for sig in self.on_signal:
            signal.signal(sig, self._on_signal)
        self.sel.register(self.wake_r, selectors.EVENT_READ, "wake")

    def wake(self) -> None:
        """Wake the loop from another thread (the code watcher)."""
        try:
            os.write(self.wake_w, b"\0")
        except BlockingIOError:
            pass

    # -- run --------------------------------------------------------------------

    def run(self) -> int:
        self.install_signals()
        try:
            orphan = take_over(
                self.spec, self.controller, self.log.info, self.log.warning, self._idle_ping
            )
        except ListenerError as exc:
            self.log.error(str(exc))
            return Exit.CONFIG
        self._start_watching()
        try:
            if orphan is not None:
                self.controller.adopt(orphan)
                self.machine.adopt(time.monotonic(), orphan.pid)
            else:
                self.machine.start(time.monotonic())
            self._publish(time.monotonic())
            while self.machine.exit_code is None:
                self._wait(time.monotonic())
                self._forward_output()
                now = time.monotonic()
                self._handle_signals(now)
                self._take_spec(now)
                self._check_children(now)
                self.machine.tick(now)
                self.controller.tick_retiring(now)
                self.controller.reopen_logs(now, self.log.warning)
                self._poll_stats(now)
                self.prober.drive(now, self.machine, self.controller)
                if self.codepush is not None:
                    self.codepush.tick(now)
                self.gate.tick(now)
                self._ping(now)
                self._publish(now)
        finally:
            self.gate.cancel()
            if self.codepush is not None:
                self.codepush.stop()
            self.controller.end_all()
            if self.controller.listeners is not None:
                self.controller.listeners.close()
        self._publish(time.monotonic(), force=True)
        return self.machine.exit_code

    def _start_watching(self) -> None:
        if self.spec.watch.enabled:
            from supervisor.codepush.glue import start_watching  # watchdog only when watching

            self.codepush, self.watch_error = start_watching(
                self.live, self.gate, self.log.info, self.log.error, self.wake
            )

    def _stop_watching(self) -> None:
        if self.codepush is not None:
            self.codepush.stop()
            self.codepush = None

    def _wait(self, now: float) -> None:
        deadlines = [
            self._stats_due(),
            self.next_watchdog if self.watchdog else None,
            self.machine.next_deadline(),
            self.codepush.deadline() if self.codepush is not None else None,
            self.gate.deadline(),
            now + RETIRE_POLL if self.controller.retiring else None,
            now + OUTPUT_POLL if self.controller.instances() else None,
            now + RETIRE_POLL if self.notifier.pending else None,
        ]
        soonest = min((d for d in deadlines if d is not None), default=now + LONGEST_SLEEP)
        timeout = max(0.0, min(soonest - now, LONGEST_SLEEP))
        for key, _ in self.sel.select(timeout):
            if key.data == "wake":
                try:
                    while os.read(self.wake_r, 4096):
                        pass
                except BlockingIOError:
                    pass

    def _forward_output(self) -> None:
        for inst in self.controller.instances():
            try:
                inst.drain_output()
            except OSError as exc:
                self.log.error(f"cannot read uWSGI's log {inst.log_path}: {exc}")

    def _handle_signals(self, now: float) -> None:
        while self.signals:
            self.on_signal[signal.Signals(self.signals.pop(0))](now)

    def _stop_signal(self, now: float, name: str) -> None:
        self.log.info(f"{name} received: stopping gracefully")
        self.machine.request_stop(now)

    # -- reloads asked for by signal: SIGHUP (the spec), SIGUSR1/2 (the code) -----

    def _reread_spec(self, now: float) -> None:
        self.rereader.start()  # off the loop: `_take_spec` applies the outcome

    def _take_spec(self, now: float) -> None:
        new = self.rereader.take()
        if new is None:
            return
        if isinstance(new, Exception):
            self.log.error(f"SIGHUP: spec is invalid, keeping the running config:\n{new}")
            self._refuse_reload(str(new))
            return
        old = self.spec
        refusal = unappliable(old, new)
        if refusal is not None:
            self.log.error(refusal)
            self._refuse_reload(refusal)
            return
        restart = needs_restart(old, new)
        if sockets_differ(old, new) and not self._reopen_sockets(new):
            return
        rewatch = new.watch != old.watch or new.watch_paths != old.watch_paths
        self.live.install(new)  # the one place a new spec takes effect
        if rewatch:
            self._stop_watching()
            self._start_watching()
        if restart:
            self._signal_reload(now, ReloadMode.RESTART, "spec changed (uWSGI command line)")
        else:
            self._signal_reload(now, new.watch.reload, "SIGHUP")

    def _reopen_sockets(self, new: Spec) -> bool:
        """Listen where a re-read spec says; False (refused, logged) if that cannot be."""
        assert self.controller.listeners is not None
        try:
            self.controller.listeners = reopen(self.controller.listeners, new, self.log.warning)
        except (ListenerError, OSError, KeyError) as exc:
            message = f"SIGHUP: {exc}; keeping the running config"
            self.log.error(message)
            self._refuse_reload(message)
            return False
        return True

    def _signal_reload(
        self, now: float, mode: ReloadMode, reason: str = "reload requested"
    ) -> None:
        if mode is ReloadMode.CHAIN and not chain_reload_loads_new_code(self.spec):
            message = chain_refusal(self.spec)
            self.log.error(message)
            self._refuse_reload(message)
            return
        self.gate.request(now, mode, reason, self.verdicts.next_seq())

    def _refuse_reload(self, message: str) -> None:
        self.verdicts.refuse_now(message)

    # -- uWSGI: exits, stats, watchdog ---------------------------------------------

    def _check_children(self, now: float) -> None:
        code = self.controller.poll_next_exit()
        if code is not None:
            why = summarize_failure(self.controller.last_tail, self.spec.app.chdir)
            self.machine.next_exited(now, describe_exit(code), why)
        code = self.controller.poll_exit()
        if code is None:
            return
        error = self.controller.last_error()
        how = describe_exit(code)
        self.log.info(f"uWSGI exited: {how}" + (f": {error}" if error else ""))
        self.machine.child_exited(now, how)

    def _stats_due(self) -> float:
        """When to read the stats socket next: the interval follows the state
        *now*, so a reload that began mid-interval is checked within 50 ms."""
        fast = self.machine.state in WAITING_STATES
        return self.last_stats_poll + (STATS_FAST if fast else STATS_SLOW)

    def _poll_stats(self, now: float) -> None:
        if now < self._stats_due():
            return
        self.last_stats_poll = now
        self.sockets = socket_docs(self.controller.listeners)
        m = self.machine
        if m.state not in POLLED_STATES or self.controller.current is None:
            return
        if self.controller.next is not None:
            m.next_stats(now, self.controller.next.stats())
        current = self.controller.current
        if current is None:
            return
        if m.state is State.RUNNING:
            self._repair(now)
        m.stats(now, current.stats())

    def _repair(self, now: float) -> None:
        """Recover the serving master's FIFO and stats socket if they vanished."""
        lost = self.controller.repair_control_files()
        if lost is None or now < self.next_repair:
            return
        self.next_repair = now + REPAIR_EVERY
        self.log.error(f"{lost}: replacing uWSGI through a swap (the app keeps serving)")
        self.machine.request_reload(now, ReloadMode.SWAP, lost)

    def _ping(self, now: float) -> None:
        if not self.watchdog or now < self.next_watchdog:
            return
        self.next_watchdog = now + self.watchdog / 2
        if self.machine.watchdog_ok(now, stale_after=max(self.watchdog / 2, 2 * STATS_SLOW)):
            self.notifier.watchdog()

    def _idle_ping(self) -> None:
        if self.watchdog:
            self.notifier.watchdog()

    # -- the one outlet ---------------------------------------------------------

    def _publish(self, now: float, force: bool = False) -> None:
        self.verdicts.settle(self.machine, self.controller.last_error)
        snap = self.snapshot(now)
        announced, self.machine.announcements = self.machine.announcements, []
        self.publisher.announce(announced, snap, now)
        self.publisher.publish(snap, now, force=force)
        self.notifier.flush()

    def snapshot(self, now: float) -> Snapshot:
        watching = self.codepush.watcher.backend if self.codepush is not None else None
        refused = self.gate.waiting or self.gate.refused or self.watch_error
        return take_snapshot(
            self.spec,
            self.machine,
            self.controller,
            watching,
            refused,
            self.verdicts.current,
            now,
            self.sockets,
        )

def run(spec: Spec, log: Logger) -> int:
    """Supervise the app of an already loaded spec until asked to stop."""
    try:
        lock = prepare_runtime_dir(spec)
    except AlreadyRunning as exc:
        log.error(str(exc))
        return Exit.TEMPFAIL
    except UnusableRuntimeDir as exc:
        log.error(str(exc))
        return Exit.CANTCREAT
    loop = Loop(spec, log)
    try:
        return loop.run()
    except Exception:
        # A bug of ours. Loop.run has already ended every uWSGI process it
        # started; exit non-zero so systemd restarts us into a clean state.
        log.error("internal error, exiting:\n" + traceback.format_exc())
        return Exit.SOFTWARE
    finally:
        lock.close()
