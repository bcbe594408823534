"""The supervisor's single-threaded loop: signals, uWSGI output, stats, timers."""

from __future__ import annotations

import os
import selectors
import signal
import sys
import time
import traceback
from pathlib import Path
from typing import IO, Any, Optional

from supervisor.codepush.preflight import summarize
from supervisor.lifecycle.machine import Machine
from supervisor.lifecycle.states import State
from supervisor.logs import Logger
from supervisor.spec.load import SpecError, load_spec
from supervisor.spec.model import Spec, runtime_paths
from supervisor.status import status_line, write_state
from supervisor.systemd.notify import Notifier, watchdog_period
from supervisor.uwsgi.command import build_command
from supervisor.uwsgi.controller import UwsgiRunner
from supervisor.uwsgi.instance import describe_exit
from supervisor.uwsgi.runtime import AlreadyRunning, prepare_runtime_dir, stop_leftovers

STATS_FAST = 0.05  # while starting or reloading: readiness is noticed this soon
STATS_SLOW = 1.0  # while running: also the watchdog's evidence of life
EX_SOFTWARE = 70
OUTPUT_POLL = 0.2  # how often uWSGI's log file is tailed into ours
HANDLED_SIGNALS = (
    signal.SIGTERM,
    signal.SIGINT,
    signal.SIGHUP,
    signal.SIGUSR1,
    signal.SIGUSR2,
    signal.SIGCHLD,
)


class Loop:
    def __init__(self, spec: Spec, log: Logger) -> None:
        self.spec = spec
        self.log = log
        self.notifier = Notifier()
        self.exit_code: Optional[int] = None
        self.runner = UwsgiRunner(spec, self.notifier, log.info, self._status, self._exit)
        self.machine = Machine(spec, self.runner)
        self.sel = selectors.DefaultSelector()
        self.signals: list[int] = []
        self.wake_r, self.wake_w = os.pipe()
        self.last_stats_poll = 0.0
        self.watchdog = watchdog_period(os.environ)
        self.next_watchdog = 0.0
        self.refused: Optional[str] = None
        self.reload_seq = 0  # reloads asked for by signal (CLI, systemctl reload)
        self.reload_done: dict[str, Any] = {"seq": 0, "ok": True, "message": ""}
        self.awaiting_reload = 0
        self.socket_prepared = False
        self.last_state_write = 0.0
        self.last_state: dict[str, Any] = {}
        self.last_milestone: tuple[Any, ...] = ()
        self.state_error = False
        self.codepush: Optional[Any] = None  # CodePush, when watch.enabled
        self.watch_error: Optional[str] = None

    # -- signal plumbing: handlers only record -----------------------------------

    def _on_signal(self, signum: int, frame: object) -> None:
        """Signal handler - no logging, no decisions: just record it."""
        self.signals.append(signum)

    def install_signals(self) -> None:
        for fd in (self.wake_r, self.wake_w):
            os.set_blocking(fd, False)
        signal.set_wakeup_fd(self.wake_w, warn_on_full_buffer=False)
        for sig in HANDLED_SIGNALS:
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
        self.stop_leftover_instance()
        self._start_watching()
        try:
            now = time.monotonic()
            self.machine.start(now)
            while self.exit_code is None:
                self._wait(time.monotonic())
                self._forward_output()
                now = time.monotonic()
                self._handle_signals(now)
                self._check_children(now)
                self.machine.tick(now)
                self.runner.tick_retiring(now)
                self._poll_stats(now)
                if self.codepush is not None:
                    self.codepush.tick(now)
                    self.refused = self.codepush.refused or self.machine.swap_failed
                else:
                    self.refused = self.watch_error or self.machine.swap_failed
                self._ping(now)
                self._publish(now)
                self.notifier.flush()
        finally:
            if self.codepush is not None:
                self.codepush.stop()
            self.runner.end_all()
        self._publish(time.monotonic(), force=True)
        return self.exit_code

    def _start_watching(self) -> None:
        if not self.spec.watch.enabled:
            return
        from supervisor.codepush.glue import CodePush

        codepush = CodePush(self.spec, self.machine, self.log.info, self.wake)
        try:
            codepush.start()
        except Exception as exc:  # serving matters more than auto-reload
            codepush.stop()
            self.watch_error = f"not watching for code pushes: {exc}"
            self.log.error(f"{self.watch_error}; serving without auto-reload")
            return
        self.watch_error = None
        self.codepush = codepush

    def _wait(self, now: float) -> None:
        deadlines = [self._stats_due(), self.next_watchdog if self.watchdog else None]
        deadlines.append(self.machine.next_deadline())
        if self.codepush is not None:
            deadlines.append(self.codepush.deadline())
        if self.runner.retiring:
            deadlines.append(now + 0.05)
        if self.runner.instances():
            deadlines.append(now + OUTPUT_POLL)
        if self.notifier.pending:
            deadlines.append(now + 0.05)
        soonest = min(d for d in deadlines if d is not None)
        timeout = max(0.0, min(soonest - now, 1.0))
        for key, _ in self.sel.select(timeout):
            if key.data == "wake":
                try:
                    while os.read(self.wake_r, 4096):
                        pass
                except BlockingIOError:
                    pass

    def _forward_output(self) -> None:
        for inst in self.runner.instances():
            try:
                inst.drain_output()
            except OSError as exc:
                self.log.error(f"cannot read uWSGI's log {inst.log_path}: {exc}")

    def _handle_signals(self, now: float) -> None:
        while self.signals:
            sig = self.signals.pop(0)
            if sig in (signal.SIGTERM, signal.SIGINT):
                self.log.info(f"{signal.Signals(sig).name} received: stopping gracefully")
                self.machine.request_stop(now)
            elif sig == signal.SIGHUP:
                self._reload_spec(now)
            elif sig in (signal.SIGUSR1, signal.SIGUSR2):
                mode = "chain" if sig == signal.SIGUSR2 else self._code_mode()
                self._begin_signal_reload(now, mode, "reload requested")

    def _code_mode(self) -> str:
        return self.spec.watch.reload

    def _reload_spec(self, now: float) -> None:
        try:
            new = load_spec(self.spec.path)
        except SpecError as exc:
            self.log.error(f"SIGHUP: spec is invalid, keeping the running config:\n{exc}")
            self.reload_seq += 1
            self.reload_done = {"seq": self.reload_seq, "ok": False, "message": str(exc)}
            return
        if new.runtime_dir != self.spec.runtime_dir or new.name != self.spec.name:
            message = (
                f"SIGHUP: {self.spec.path}: name or runtime_dir changed; that takes a restart"
                " of the service (systemctl restart), keeping the running config"
            )
            self.log.error(message)
            self.reload_seq += 1
            self.reload_done = {"seq": self.reload_seq, "ok": False, "message": message}
            return
        inst = runtime_paths(self.spec).instance("x")
        changed = build_command(self.spec, inst).argv != build_command(new, inst).argv
        changed = changed or new.app.env != self.spec.app.env or new.user != self.spec.user
        watch_changed = new.watch != self.spec.watch or new.watch_paths != self.spec.watch_paths
        self.spec = new
        self.machine.spec = new
        self.runner.spec = new
        if watch_changed or self.codepush is not None and not new.watch.enabled:
            if self.codepush is not None:
                self.codepush.stop()
                self.codepush = None
            self._start_watching()
        elif self.codepush is not None:
            self.codepush.spec = new
            self.codepush.preflight.spec = new
        if changed:
            self._begin_signal_reload(now, "restart", "spec changed (uWSGI command line)")
        else:
            self._begin_signal_reload(now, self._code_mode(), "SIGHUP")

    def _begin_signal_reload(self, now: float, mode: str, reason: str) -> None:
        self.reload_seq += 1
        self.awaiting_reload = self.reload_seq
        self.machine.request_reload(now, mode, reason)

    def _check_children(self, now: float) -> None:
        code = self.runner.poll_next_exit()
        if code is not None:
            why = summarize("\n".join(self.runner.last_tail), self.spec.app.chdir)
            self.machine.next_exited(now, describe_exit(code), why)
        code = self.runner.poll_exit()
        if code is None:
            return
        self.socket_prepared = False
        error = self.runner.last_error()
        how = describe_exit(code)
        self.log.info(f"uWSGI exited: {how}" + (f": {error}" if error else ""))
        self.machine.child_exited(now, how)

    def _stats_due(self) -> float:
        """When to read the stats socket next: the interval follows the state
        *now*, so a reload that began mid-interval is checked within 50 ms."""
        fast = self.machine.state in (State.STARTING, State.RELOADING, State.STOPPING)
        return self.last_stats_poll + (STATS_FAST if fast else STATS_SLOW)

    def _poll_stats(self, now: float) -> None:
        if now < self._stats_due():
            return
        self.last_stats_poll = now
        m = self.machine
        current = self.runner.current
        if m.state not in (State.STARTING, State.RUNNING, State.RELOADING) or current is None:
            return
        if self.runner.next is not None:
            m.next_stats(time.monotonic(), self.runner.next.stats())
            current = self.runner.current
            if current is None:
                return
        sock = self.spec.uwsgi.socket.path
        if not self.socket_prepared and (sock is None or sock.exists()):
            # As soon as uWSGI bound it, before any worker serves: nginx must
            # never see a permission error.
            self.runner.prepare_socket(sock)
            self.socket_prepared = True
        stats = current.stats()
        m.stats(time.monotonic(), stats)
        self._settle_signal_reload()

    def _settle_signal_reload(self) -> None:
        """Record the outcome of a signal-requested reload for `reload --wait`."""
        if not self.awaiting_reload:
            return
        m = self.machine
        if m.state is State.RUNNING and m.reload is None and m.pending is None:
            ok, message = True, f"reloaded: generation {m.generation}"
        elif m.state in (State.BACKOFF, State.FATAL, State.STOPPED):
            ok, message = False, f"reload failed: {m.state.value}: {self.runner.last_error()}"
        else:
            return
        self.reload_done = {"seq": self.awaiting_reload, "ok": ok, "message": message}
        self.awaiting_reload = 0

    def _ping(self, now: float) -> None:
        if not self.watchdog or now < self.next_watchdog:
            return
        self.next_watchdog = now + self.watchdog / 2
        if self.machine.watchdog_ok(now, stale_after=max(self.watchdog / 2, 2 * STATS_SLOW)):
            self.notifier.watchdog()

    def _status(self) -> str:
        return status_line(self.machine, time.monotonic(), self.runner.last_error(), self.refused)

    def _publish(self, now: float, force: bool = False) -> None:
        """Send STATUS= and rewrite the state file: at once when the state,
        the generation or a reload's outcome changed (READY and the file
        agree), else at most every 0.2 s."""
        m = self.machine
        milestone = (m.state, m.generation, self.reload_done.get("seq"), self.refused)
        if milestone != self.last_milestone:
            self.last_milestone = milestone
            force = True
        if not force and now - self.last_state_write < 0.2:
            return
        self.last_state_write = now
        self._settle_signal_reload()
        line = self._status()
        self.notifier.status(line)
        doc: dict[str, Any] = {
            "name": self.spec.name,
            "supervisor_pid": os.getpid(),
            "state": m.state.value,
            "status": line,
            "uwsgi_pid": self.runner.current.pid if self.runner.current else None,
            "watching": self.codepush.watcher.backend if self.codepush else None,
            "generation": m.generation,
            "crashes": m.crashes,
            "next_try_in": max(0.0, m.deadline - now)
            if m.state is State.BACKOFF and m.deadline
            else None,
            "last_exit": m.last_exit,
            "last_error": self.runner.last_error() if m.state is not State.RUNNING else None,
            "last_reload": {"at": m.last_reload[0], "reason": m.last_reload[1]}
            if m.last_reload
            else None,
            "reload_refused": self.refused,
            "reload_done": self.reload_done,
            "uwsgi_tail": self.runner.tail()[-10:] if m.state is not State.RUNNING else [],
        }
        if doc == self.last_state and not force:
            return  # idle: no rewrite, no wakeup of anyone watching the file
        try:
            write_state(runtime_paths(self.spec).state, doc)
            self.last_state = doc
            self.state_error = False
        except OSError as exc:
            if not self.state_error:  # a full disk must not flood the journal
                self.log.error(f"cannot write state file (status shows stale data): {exc}")
            self.state_error = True

    def _exit(self, code: int) -> None:
        self.exit_code = code

    def stop_leftover_instance(self) -> None:
        stop_leftovers(self.spec, self.log.info, self._idle_ping)

    def _idle_ping(self) -> None:
        if self.watchdog:
            self.notifier.watchdog()


def run(spec_path: Path, log: Logger, stream: IO[str] = sys.stderr) -> int:
    spec = load_spec(spec_path)
    try:
        lock = prepare_runtime_dir(spec)
    except AlreadyRunning as exc:
        log.error(str(exc))
        return 75
    loop = Loop(spec, log)
    try:
        return loop.run()
    except Exception:
        # A bug of ours. Loop.run has already ended every uWSGI process it
        # started; exit non-zero so systemd restarts us into a clean state.
        log.error("internal error, exiting:\n" + traceback.format_exc())
        return EX_SOFTWARE
    finally:
        lock.close()
