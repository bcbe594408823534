"""The supervisor's single-threaded loop: signals, uWSGI output, stats, timers.

Every decision is made here, in one thread: signal handlers and the code
watcher's thread only record and wake the loop (a self-pipe). Each turn
reads what happened, feeds it to the state machine, then hands the
machine's announcements and a snapshot to the one publisher.
"""

from __future__ import annotations

import signal
import time
import traceback
from typing import TYPE_CHECKING, Callable, Optional

from supervisor.cadence import STATS_IDLE, Cadence
from supervisor.codepush.gate import Gate
from supervisor.exitcodes import Exit
from supervisor.history import History
from supervisor.lifecycle.machine import Machine
from supervisor.lifecycle.states import POLLED_STATES, State
from supervisor.logs import Logger
from supervisor.metrics import Counters, View
from supervisor.publish import Publisher, socket_docs, take_snapshot, view_of
from supervisor.respec import SpecRereader, unappliable
from supervisor.spec.model import LiveSpec, ReloadMode, Spec, runtime_paths
from supervisor.status import Snapshot, SocketDoc
from supervisor.systemd.notify import Notifier
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
from supervisor.wakeups import Wakeups

if TYPE_CHECKING:
    from supervisor.codepush.glue import CodePush
    from supervisor.metrics.server import MetricsServer

RETIRE_POLL = 0.05  # how often a master retiring after a swap is checked on
LONGEST_SLEEP = STATS_IDLE
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
        self.history = History(spec.name, spec.state_dir, log.error, log.journal)
        self.counters = Counters()  # the metrics count what the history records
        self.history.listeners.append(self.counters.count)
        self.metrics: Optional[MetricsServer] = None  # when metrics.listen is set
        self.view: Optional[View] = None  # what a scrape shows: replaced each turn
        self.gate = Gate(
            self.live,
            self.machine,
            log.info,
            lambda seqs: self.verdicts.forwarded(
                seqs, self.machine.generation, self.machine.rollbacks
            ),
            self._refused,
        )
        self.publisher = Publisher(
            self.notifier, lambda: runtime_paths(self.spec).state, log.error
        )
        self.wakeups = Wakeups()
        self.wake = self.wakeups.wake  # for other threads: the code watcher, checks
        self.signals: list[int] = []
        self.cadence = Cadence(self.machine, self.controller, self.notifier)
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
            signal.SIGUSR1: lambda now: self._signal_reload(now, self.spec.watch.reload, "SIGUSR1"),
            signal.SIGUSR2: lambda now: self._signal_reload(now, ReloadMode.CHAIN, "SIGUSR2"),
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
        self.wakeups.install()
        for sig in self.on_signal:
            signal.signal(sig, self._on_signal)

    # -- run --------------------------------------------------------------------

    def run(self) -> int:
        self.install_signals()
        try:
            orphan = take_over(
                self.spec, self.controller, self.log.info, self.log.warning, self.cadence.idle_ping
            )
        except ListenerError as exc:
            self.log.error(str(exc))
            return Exit.CONFIG
        self._start_watching()
        self._serve_metrics()
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
                self.cadence.ping(now)
                self._publish(now)
        finally:
            self.gate.cancel()
            if self.codepush is not None:
                self.codepush.stop()
            self.controller.end_all()
            self.wakeups.close()
            if self.metrics is not None:
                self.metrics.close()
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

    def _serve_metrics(self) -> None:
        """Serve /metrics where the spec says now (at start, and after SIGHUP)."""
        if self.metrics is not None:
            self.metrics.close()
            self.metrics = None
        if self.spec.metrics.listen is not None:  # prometheus_client only when serving
            from supervisor.metrics.server import start_metrics

            view = lambda: self.view  # noqa: E731 (read on the server's thread)
            self.metrics = start_metrics(self.spec, view, self.counters, self.log.error)

    def _stop_watching(self) -> None:
        if self.codepush is not None:
            self.codepush.stop()
            self.codepush = None

    def _wait(self, now: float) -> None:
        self.wakeups.sleep_until(now, [
            self.cadence.stats_due(now),
            self.cadence.ping_due(),
            self.machine.next_deadline(),
            self.codepush.deadline() if self.codepush is not None else None,
            self.gate.deadline(),
            now + RETIRE_POLL if self.controller.retiring else None,
            now + RETIRE_POLL if self.notifier.pending else None,
            *self.wakeups.deadlines(now, bool(self.controller.instances())),
        ], longest=LONGEST_SLEEP, slack=self.cadence.slack(now))

    def _forward_output(self) -> None:
        instances = self.controller.instances()
        self.wakeups.before_reading()
        for inst in instances:
            try:
                inst.drain_output()
            except OSError as exc:
                self.log.error(f"cannot read uWSGI's log {inst.log_path}: {exc}")
        self.wakeups.after_reading(inst.log_path for inst in instances)

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
            self._refuse_reload(str(new), "SIGHUP")
            return
        old = self.spec
        refusal = unappliable(old, new)
        if refusal is not None:
            self.log.error(refusal)
            self._refuse_reload(refusal, "SIGHUP")
            return
        restart = needs_restart(old, new)
        if sockets_differ(old, new) and not self._reopen_sockets(new):
            return
        rewatch = new.watch != old.watch or new.watch_paths != old.watch_paths
        self.live.install(new)  # the one place a new spec takes effect
        if rewatch:
            self._stop_watching()
            self._start_watching()
        if new.metrics != old.metrics:
            self._serve_metrics()
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
            self._refuse_reload(message, "SIGHUP")
            return False
        return True

    def _signal_reload(self, now: float, mode: ReloadMode, reason: str) -> None:
        if mode is ReloadMode.CHAIN and not chain_reload_loads_new_code(self.spec):
            message = chain_refusal(self.spec)
            self.log.error(message)
            self._refuse_reload(message, reason)
            return
        self.gate.request(now, mode, reason, self.verdicts.next_seq())

    def _refuse_reload(self, message: str, trigger: str) -> None:
        self.verdicts.refuse_now(message)
        self.history.refused(message, "refused", trigger)

    def _refused(self, seqs: tuple[int, ...], why: str, kind: str, trigger: str) -> None:
        """The gate kept a reload from uWSGI."""
        self.verdicts.refused(seqs, why, kind)
        self.history.refused(why, kind, trigger)

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

    def _poll_stats(self, now: float) -> None:
        if not self.cadence.poll_stats_now(now):
            return
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

    # -- the one outlet ---------------------------------------------------------

    def _publish(self, now: float, force: bool = False) -> None:
        self.verdicts.settle(self.machine, self.controller.last_error)
        self.history.take(
            self.machine, now, self.controller.tail, self.spec.app.chdir, self.controller.last_error
        )
        snap = self.snapshot(now)
        if self.metrics is not None:
            self.view = view_of(snap, self.machine.last_stats_ok, now)
        announced, self.machine.announcements = self.machine.announcements, []
        self.publisher.turn(announced, snap, now, force=force)
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
