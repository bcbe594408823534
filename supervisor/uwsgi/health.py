"""The health check: one real HTTP request to one master's private socket.

Every master listens, besides the shared sockets, on its own unix socket
(`health-TAG.sock`, 0600) speaking HTTP, so a check reaches that master's
workers only: through the shared socket an old worker could answer and give
a new master a false pass. A check runs on a thread (an app may take the
whole timeout to answer) and wakes the loop when it ends.
"""

from __future__ import annotations

import queue
import socket
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

from supervisor.lifecycle.health import CURRENT, NEXT
from supervisor.lifecycle.machine import Machine
from supervisor.spec.model import HealthSpec, Spec
from supervisor.uwsgi.controller import UwsgiController
from supervisor.uwsgi.failures import summarize_failure, traceback_summary
from supervisor.uwsgi.instance import Instance

MAX_ANSWER = 65536  # read this much of the answer at most
SHOWN_LINES = 3  # lines of the body a refusal quotes
SHOWN_WIDTH = 160
# While a swapped-in master bakes: this many 5xx answers to the site, half
# of its answers or more, roll it back (a check each second would be slower).
BAD_ANSWERS = 5
# How long a failed check waits for the app's traceback to reach uWSGI's log.
TRACEBACK_GRACE = 0.5


@dataclass(frozen=True)
class Probe:
    ok: bool
    status: Optional[int]  # None: no HTTP answer at all
    detail: str  # "GET / answered 500: <title>500 Internal Server Error</title>"
    seconds: float


def probe(sock_path: Path, health: HealthSpec, path: str) -> Probe:
    """GET `path` from the master listening on `sock_path`, blocking up to the timeout."""
    started = time.monotonic()
    deadline = started + health.timeout
    request = (
        f"GET {path} HTTP/1.0\r\nHost: {health.host}\r\n"
        "User-Agent: uwsgi-supervisor-health\r\nConnection: close\r\n\r\n"
    ).encode("ascii")
    answer = b""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(health.timeout)
            sock.connect(str(sock_path))
            sock.sendall(request)
            while len(answer) < MAX_ANSWER:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise socket.timeout()
                sock.settimeout(left)
                chunk = sock.recv(MAX_ANSWER - len(answer))
                if not chunk:
                    break
                answer += chunk
    except socket.timeout:
        took = time.monotonic() - started
        return Probe(False, None, f"GET {path}: no answer within {health.timeout:g}s", took)
    except OSError as exc:
        took = time.monotonic() - started
        return Probe(False, None, f"GET {path}: {exc.strerror or exc}", took)
    took = time.monotonic() - started
    status = _status(answer)
    if status is None:
        first = answer[:SHOWN_WIDTH].decode("utf-8", "replace").strip() or "(nothing)"
        return Probe(False, None, f"GET {path}: not an HTTP answer: {first}", took)
    ok = health.passed(status)
    detail = f"GET {path} answered {status}"
    if not ok:
        body = _body_lines(answer)
        if body:
            detail += ": " + " | ".join(body)
    return Probe(ok, status, detail, took)


def _status(answer: bytes) -> Optional[int]:
    line = answer.split(b"\r\n", 1)[0].split()
    if len(line) >= 2 and line[0].startswith(b"HTTP/") and line[1].isdigit():
        return int(line[1])
    return None


def _body_lines(answer: bytes) -> list[str]:
    """The first non-blank lines of the body, shortened: what a person needs to see."""
    _, _, body = answer.partition(b"\r\n\r\n")
    lines = []
    for raw in body.decode("utf-8", "replace").splitlines():
        line = " ".join(raw.split())
        if line:
            lines.append(line if len(line) <= SHOWN_WIDTH else line[: SHOWN_WIDTH - 3] + "...")
        if len(lines) == SHOWN_LINES:
            break
    return lines


def dump_stacks(workers: list[tuple[int, int, Path]], log: Callable[[str], None]) -> None:
    """Log the Python stacks of stuck workers, read from uWSGI's py-tracebacker
    sockets ((worker id, pid, socket) each); blocking, so run on a thread."""
    for wid, pid, path in workers:
        text = b""
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                sock.settimeout(3.0)
                sock.connect(str(path))
                while len(text) < MAX_ANSWER:
                    chunk = sock.recv(MAX_ANSWER)
                    if not chunk:
                        break
                    text += chunk
        except OSError as exc:
            log(f"worker {wid} (pid {pid}) is stuck; no stacks from {path}: {exc}")
            continue
        stacks = text.decode("utf-8", "replace").rstrip()
        log(f"worker {wid} (pid {pid}) is stuck here:\n{stacks}")


class Prober:
    """One check at a time, on one long-lived thread (it sleeps on a queue:
    no wake-up between checks); `take` hands the result to the loop."""

    def __init__(self, wake: Callable[[], None], log: Callable[[str], None]) -> None:
        self.wake = wake
        self.log = log
        self._jobs: queue.SimpleQueue[tuple[Path, HealthSpec, str]] = queue.SimpleQueue()
        self._thread: Optional[threading.Thread] = None
        self._busy = False
        self._target = ""
        self._result: Optional[Probe] = None  # set by the thread, taken by the loop

    @property
    def running(self) -> bool:
        return self._busy

    def start(self, target: str, sock_path: Path, health: HealthSpec, path: str) -> None:
        assert not self._busy, "one check at a time"
        self._target, self._result, self._busy = target, None, True
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="health-check", daemon=True)
            self._thread.start()
        self._jobs.put((sock_path, health, path))

    def _run(self) -> None:
        while True:
            sock_path, health, path = self._jobs.get()
            try:
                result = probe(sock_path, health, path)
            except Exception as exc:  # a bug of ours must not end the checks
                result = Probe(False, None, f"the health check itself failed: {exc}", 0.0)
            self._result = result
            self.wake()

    def take(self) -> Optional[tuple[str, Probe]]:
        """(target, result) of a finished check, once; None while one runs or none did."""
        result = self._result
        if not self._busy or result is None:
            return None
        self._busy, self._result = False, None
        return self._target, result

    def drive(self, now: float, machine: Machine, controller: UwsgiController) -> None:
        """One turn of the loop: report a finished check, start the one due, and
        while a swapped-in master bakes, read the site's own answers."""
        current = controller.current
        if machine.hung and current is not None:  # before the swap retires it
            stuck = [(w, pid, current.paths.tracebacker(w)) for w, pid in machine.hung]
            machine.hung = ()
            threading.Thread(target=dump_stacks, args=(stuck, self.log), daemon=True).start()
        if machine.bake_until is not None and current is not None:
            bad, total = current.server_errors, current.answered
            if bad >= BAD_ANSWERS and 2 * bad >= total:
                why = f"{bad} of its first {total} requests answered 5xx"
                machine.health_result(now, CURRENT, False, why)
        taken = self.take()
        if taken is not None:
            target, result = taken
            detail = result.detail
            inst = controller.next if target == NEXT else controller.current
            if not result.ok and inst is not None:
                logged = logged_failure(inst, controller.spec.app.chdir)
                if logged:
                    detail += f"; uWSGI's log: {logged}"
            machine.health_result(now, target, result.ok, detail)
        if self.running:
            return
        due = machine.probe_due(now)
        if due is None:
            return
        inst = controller.next if due == NEXT else controller.current
        if inst is None:
            machine.health_result(now, due, False, "that master is gone")
            return
        spec: Spec = controller.spec
        self.start(due, inst.paths.health, spec.health, spec.health.url_path(spec.uwsgi.mount))


def logged_failure(inst: Instance, chdir: Optional[Path]) -> Optional[str]:
    """Why a failed check failed, as uWSGI's log tells (the app's traceback).

    A worker can close the connection a moment before its traceback reaches
    the log file, so a check that found no traceback looks again for up to
    TRACEBACK_GRACE seconds: a refusal is rare, and one that names the error
    is worth that much."""
    deadline = time.monotonic() + TRACEBACK_GRACE
    while True:
        inst.drain_output()
        found = traceback_summary(inst.tail, chdir)
        if found is not None or time.monotonic() >= deadline:
            return found or summarize_failure(inst.tail, chdir)
        time.sleep(0.02)
