"""The real Controller: spawns uWSGI instances, swaps them, ends their processes.

It only controls processes: what the machine announces, and the STATUS and
state file that follow from it, are the publisher's job.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Callable, Optional

from supervisor.lifecycle.machine import KILL_AFTER
from supervisor.spec.model import LiveSpec, Spec, runtime_paths
from supervisor.uwsgi import procs
from supervisor.uwsgi.adopt import Orphan
from supervisor.uwsgi.command import HELD_FDS, HOLD, build_command, write_entry
from supervisor.uwsgi.failures import summarize_failure
from supervisor.uwsgi.instance import Instance
from supervisor.uwsgi.listeners import Listeners
from supervisor.uwsgi.private import open_private
from supervisor.uwsgi.runtime import drop_privileges


class UwsgiController:
    """Owns the uWSGI masters (our children): the serving one, a swap candidate,
    and ones retiring after a swap."""

    def __init__(self, live: LiveSpec, log: Callable[[str], None]) -> None:
        self.live = live
        self._log = log
        self.current: Optional[Instance] = None
        self.next: Optional[Instance] = None
        self.retiring: list[Instance] = []
        self.baking: Optional[Instance] = None  # paused after a swap, for a rollback
        self.spawn_count = 0
        self.last_tail: list[str] = []
        self._error_key: tuple[tuple[str, ...], Optional[Path]] = ((), None)
        self._error: Optional[str] = None
        self.listeners: Optional[Listeners] = None  # held for the app's whole life

    @property
    def spec(self) -> Spec:
        return self.live.spec

    def instances(self) -> list[Instance]:
        found = [self.current, self.next, self.baking, *self.retiring]
        return [i for i in found if i is not None]

    # -- Controller protocol ---------------------------------------------------

    def spawn(self, now: float) -> None:
        if self.current is not None:
            self.current.close()
        self._clear_stale_files()
        self.current = self._start(serving=True)

    def adopt(self, orphan: Orphan) -> None:
        """Serve with the master a previous supervisor left (see `adopt`)."""
        inst = Instance(self.spec, runtime_paths(self.spec).instance(orphan.tag))
        inst.adopt(orphan.pid)
        self.current = inst
        if orphan.tag.isdigit():  # the next master gets a tag of its own
            self.spawn_count = max(self.spawn_count, int(orphan.tag))
        self._log(f"adopted uWSGI pid {orphan.pid} (instance {orphan.tag}), which serves")

    def spawn_next(self, now: float) -> None:
        """Start a swap candidate on the same listening sockets as the serving master.

        With the health check on, its workers hold off the shared sockets
        (see command.HOLD) until `release_next`: no request of the site
        reaches code that has not answered one on its private socket.
        """
        self.next = self._start(serving=False)

    def release_next(self) -> bool:
        """The candidate passed: its workers, forked anew (`w`), take traffic.
        False if its FIFO has no reader yet (retry)."""
        nxt = self.next
        if nxt is None:
            return True
        _unlink(nxt.paths.hold)
        return nxt.send_fifo("w")

    def promote_next(self, now: float, bake: bool = False) -> None:
        """The candidate serves: it becomes the current master; the old one retires.

        Both accept on the one listening socket, so nothing is renamed and no
        queued connection is lost: the old master stops accepting at once
        (`q`: its workers finish what they hold, then exit) and whatever is
        queued goes to the new one. With `bake`, the old master is paused
        instead (`p`: its workers finish what they hold, then wait), ready
        to take over again (`roll_back`) until `end_bake`.
        """
        new, old = self.next, self.current
        assert new is not None
        self.current, self.next = new, None
        self._relink(new)
        new.answered = new.server_errors = 0  # the site's answers count from now
        if old is None:
            return
        if bake and old.send_fifo("p"):
            self.baking = old
            self._log(f"swapped: uWSGI pid {new.pid} now serves; pid {old.pid} paused")
        else:
            self._retire(old, now)
            self._log(f"swapped: uWSGI pid {new.pid} now serves; retiring pid {old.pid}")

    def end_bake(self, now: float) -> None:
        """The new master proved itself: the paused one goes.

        It is never resumed to quit: resumed workers would race the new ones
        for the shared socket, and one caught between accept() and its
        request by the quit loses that connection. Paused workers hold no
        connection (they pause after finishing their request), so the
        paused master is killed as soon as none of its workers is busy.
        """
        old, self.baking = self.baking, None
        if old is not None:
            old.retire_stage = "paused"
            old.retire_deadline = now + self.spec.stop_timeout
            self.retiring.append(old)
            self._log(f"retiring uWSGI pid {old.pid}, kept paused for a rollback until now")

    def roll_back(self, now: float) -> bool:
        """The new master failed: the paused one resumes serving, the new one
        retires. False if there is none to resume (it died meanwhile)."""
        old, new = self.baking, self.current
        self.baking = None
        if old is None or old.poll() is not None or not old.send_fifo("p"):
            return False
        self.current = old
        self._relink(old)
        if new is not None:
            if new.poll() is None:
                self._retire(new, now)
            else:
                new.close()
        self._log(f"rolled back: uWSGI pid {old.pid} serves again")
        return True

    def _relink(self, inst: Instance) -> None:
        paths = runtime_paths(self.spec)
        _link(paths.master_fifo, inst.paths.master_fifo)
        _link(paths.stats, inst.paths.stats)

    def _retire(self, inst: Instance, now: float) -> None:
        inst.retire_stage = "quit"
        inst.retire_deadline = now + self.spec.stop_timeout
        inst.retire_quit_sent = inst.send_fifo("q")
        self.retiring.append(inst)

    def abort_next(self) -> None:
        if self.next is None:
            return
        nxt, self.next = self.next, None
        killed = nxt.kill()
        self.last_tail = list(nxt.tail)
        nxt.poll()
        nxt.close()
        self._log(f"swap candidate pid {nxt.pid} ended ({len(killed)} processes)")

    def send_fifo(self, command: str) -> bool:
        return self.current is not None and self.current.send_fifo(command)

    def signal_master(self, sig: int) -> None:
        if self.current is not None:
            self.current.signal(sig)

    def kill_instance(self) -> None:
        if self.current is not None:
            self.current.kill()

    def reap_leftovers(self) -> None:
        """The serving master exited: end whatever of its instance is left."""
        inst = self.current
        if inst is None:
            return
        killed = inst.kill()
        if killed:
            self._log(
                f"ended {len(killed)} leftover uWSGI process(es) of the previous master:"
                f" {' '.join(map(str, killed))}"
            )
        self.abort_next()

    # -- loop helpers ------------------------------------------------------------

    def repair_control_files(self) -> Optional[str]:
        """Put back what a tmp cleaner (or a careless `rm`) took from the serving
        master; say what only a new master can bring back (None: all there).

        A vanished FIFO is recreated by uWSGI itself once poked (see
        `procs.revive_fifo`); a vanished stats socket cannot be: uWSGI binds
        it once, at start. The convenience links are relinked.
        """
        inst = self.current
        if inst is None or inst.exit_code is not None or inst.pid is None:
            return None
        fifo, stats, pid = inst.paths.master_fifo, inst.paths.stats, inst.pid
        lost: list[str] = []
        if not os.path.lexists(fifo):
            if procs.revive_fifo(pid, fifo):
                self._log(f"master FIFO {fifo} vanished; uWSGI pid {pid} recreates it")
            else:
                lost.append(f"master FIFO {fifo}")
        if not os.path.lexists(stats):
            lost.append(f"stats socket {stats}")
        paths = runtime_paths(self.spec)
        for link, target in ((paths.master_fifo, fifo), (paths.stats, stats)):
            if not os.path.lexists(link):
                _link(link, target)
        return " and ".join(lost) + " vanished" if lost else None

    def poll_exit(self) -> Optional[int]:
        """The serving master's exit status if it just exited."""
        inst = self.current
        if inst is None or inst.exit_reported:
            return None
        code = inst.poll()
        if code is not None:
            inst.exit_reported = True
            self.last_tail = list(inst.tail)
        return code

    def poll_next_exit(self) -> Optional[int]:
        if self.next is None or self.next.exit_reported:
            return None
        code = self.next.poll()
        if code is not None:
            self.next.exit_reported = True
            self.last_tail = list(self.next.tail)
        return code

    def tick_retiring(self, now: float) -> None:
        """Quit, then SIGINT, then SIGKILL masters replaced by a swap; reap them."""
        paused = self.baking
        if paused is not None and paused.poll() is not None:
            self._log(f"the paused uWSGI pid {paused.pid} exited: no rollback is possible now")
            paused.kill()
            paused.close()
            self.baking = None
        for inst in list(self.retiring):
            if inst.poll() is not None:
                inst.kill()
                inst.close()
                self.retiring.remove(inst)
                continue
            if inst.retire_stage == "paused":
                stats = inst.stats(timeout=0.2)
                busy = stats is not None and any(w.status == "busy" for w in stats.workers)
                if not busy or now >= inst.retire_deadline:
                    inst.kill()  # idle paused workers: nothing in flight to lose
                continue
            if inst.retire_stage == "quit" and not inst.retire_quit_sent:
                inst.retire_quit_sent = inst.send_fifo("q")  # between execs: retry
            if now < inst.retire_deadline:
                continue
            if inst.retire_stage == "quit":
                self._log(f"retiring uWSGI pid {inst.pid} ignored 'q'; sending SIGINT")
                inst.signal(signal.SIGINT)
                inst.retire_stage = "int"
                inst.retire_deadline = now + KILL_AFTER
            else:
                inst.kill()

    def reopen_logs(self, now: float, warn: Callable[[str], None]) -> None:
        """Have every live master write to the `logto` file now at its path,
        after logrotate (or an `mv`) renamed the one it writes (see `logfile`)."""
        for inst in self.instances():
            if inst.reopen_log(now, warn):
                self._log(f"logto {inst.log_path} was rotated: uWSGI pid {inst.pid} reopens it")

    def last_error(self) -> Optional[str]:
        """Why uWSGI last failed, in one line (see `failures.summarize_failure`).

        Asked on every turn of the loop: the summary is kept until the lines change."""
        key = (tuple(self.tail()), self.spec.app.chdir)
        if key != self._error_key:
            self._error_key = key
            self._error = summarize_failure(key[0], key[1])
        return self._error

    def tail(self) -> list[str]:
        return list(self.current.tail) if self.current and self.current.tail else self.last_tail

    def _start(self, serving: bool) -> Instance:
        assert self.listeners is not None, "the loop opens the listening sockets first"
        paths = runtime_paths(self.spec)
        write_entry(self.spec)
        self.spawn_count += 1
        inst = Instance(self.spec, paths.instance(str(self.spawn_count)))
        cmd = build_command(self.spec, inst.paths, self.listeners.socket_fds())
        if not serving and self.spec.health.enabled:
            os.close(open_private(inst.paths.hold, os.O_WRONLY))
            cmd.env[HOLD] = str(inst.paths.hold)
            cmd.env[HELD_FDS] = ",".join(str(fd) for fd in self.listeners.fds())
        try:
            inst.start(cmd, drop_privileges(self.spec), self.listeners.fds())
        except OSError as exc:
            self._log(f"cannot start {cmd.argv[0]}: {exc}")
            inst.tail.append(f"OSError: cannot start {cmd.argv[0]}: {exc.strerror}")
            inst.exit_code = 127  # reported as an exit, so backoff applies
            return inst
        if serving:
            _link(paths.master_fifo, inst.paths.master_fifo)
            _link(paths.stats, inst.paths.stats)
        self._log(f"spawned uWSGI pid {inst.pid}: {cmd.shell_line()}")
        return inst

    def _clear_stale_files(self) -> None:
        """Remove control files no live process uses (never the app socket: the
        supervisor holds it open; uWSGI's vacuum is off so no master unlinks it)."""
        live = {
            path
            for i in self.instances()
            for path in (i.paths.master_fifo, i.paths.stats, i.paths.health, i.paths.hold)
        } | {p for i in self.instances() for p in i.paths.root.glob(f"tb-{i.tag}-*")}
        root = runtime_paths(self.spec).root
        stale = ("master-*.fifo", "stats-*.sock", "health-*.sock", "hold-*", "tb-*")
        for path in [p for pattern in stale for p in root.glob(pattern)]:
            if path not in live:
                _unlink(path)

    def end_all(self) -> None:
        """Last resort on exit: nothing we started may outlive us."""
        for inst in self.instances():
            inst.kill()
            inst.poll()
            inst.close()
        procs.kill_leftovers(self.spec.runtime_dir)


def _link(link: Path, target: Path) -> None:
    tmp = link.with_name(f".{link.name}.tmp")
    _unlink(tmp)
    os.symlink(target.name, tmp)
    os.replace(tmp, link)


def _unlink(path: Path) -> None:
    try:
        path.unlink()
    except FileNotFoundError:
        pass
