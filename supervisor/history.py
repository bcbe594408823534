"""The event history: what happened to the app, one JSON line per event.

Every start, crash, reload, refusal, rollback and stop is appended to
`events.jsonl` in the app's state dir (systemd's StateDirectory=, so it
survives restarts and reboots) and sent to the journal as a structured
entry. The file is capped: past MAX_BYTES it becomes `events.jsonl.1` (the
one before is dropped), so a host that crash-loops for a month keeps at most
twice MAX_BYTES, and the newest events. A write that fails (a full disk) is
logged once and never stops supervision.

A reload's line is written when its verdict is known (after the bake of a
swap), with its trigger, mode, duration and verdict.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional

from supervisor.lifecycle.machine import Machine
from supervisor.systemd import journal
from supervisor.uwsgi.failures import summarize_failure
from supervisor.uwsgi.private import UnusableRuntimeDir, open_private, secure_dirs
from supervisor.verdicts import reload_outcome

FILE = "events.jsonl"
MAX_BYTES = 1 << 20
TAIL_LINES = 50  # of uWSGI's output, kept with a crash
MAX_LINE = 400  # characters of one such line
PRIORITY = {"crash": 3, "refused": 4, "rollback": 4, "reload": 6}  # syslog levels; else 6


def events_path(state_dir: Path) -> Path:
    return state_dir / FILE


@dataclass
class _OpenReload:
    """A reload handed to the machine, waiting for its verdict."""

    mode: str
    trigger: str
    at: float  # monotonic
    wall: float
    generation: int
    rollbacks: int


class History:
    def __init__(
        self,
        name: str,
        state_dir: Optional[Path],
        log_error: Callable[[str], None],
        to_journal: bool,
    ) -> None:
        self.name = name
        self.path = events_path(state_dir) if state_dir is not None else None
        self.log_error = log_error
        self.to_journal = to_journal
        self.write_failed = False
        self.reload: Optional[_OpenReload] = None
        # Told of every event recorded (the metrics count them).
        self.listeners: list[Callable[[dict[str, Any]], None]] = []
        if self.path is not None:
            try:
                secure_dirs(self.path.parent, frozenset({os.geteuid()}))
            except (UnusableRuntimeDir, OSError) as exc:
                self.log_error(f"no event history: {exc}")
                self.path = None

    # -- from the loop ----------------------------------------------------------

    def take(
        self,
        m: Machine,
        now: float,
        tail: Callable[[], list[str]],
        chdir: Optional[Path],
        last_error: Callable[[], Optional[str]],
    ) -> None:
        """One turn: record what the machine announced, and a reload's verdict once known."""
        events, m.events = m.events, []
        for event in events:
            if event.kind == "reload":
                self._supersede(m, now)
                self.reload = _OpenReload(
                    mode=str(dict(event.detail)["mode"]),
                    trigger=str(dict(event.detail)["trigger"]),
                    at=event.at,
                    wall=_wall(event.at, now),
                    generation=m.generation,
                    rollbacks=m.rollbacks,
                )
                continue
            doc: dict[str, Any] = {"event": event.kind, **dict(event.detail)}
            if event.kind == "crash":
                lines = [line[:MAX_LINE] for line in tail()[-TAIL_LINES:]]
                doc["cause"] = summarize_failure(lines, chdir)
                doc["lines"] = lines
            doc["generation"] = m.generation
            self.record(doc, _wall(event.at, now))
        if self.reload is not None:
            outcome = reload_outcome(m, self.reload.generation, self.reload.rollbacks, last_error)
            if outcome is not None:
                self._close(m, now, *outcome)

    def _supersede(self, m: Machine, now: float) -> None:
        """A new reload began before the last one's verdict: close that one now."""
        if self.reload is None:
            return
        if m.rollbacks > self.reload.rollbacks:
            self._close(m, now, False, m.rolled_back or "rolled back", "rolled back")
        elif m.generation > self.reload.generation:
            self._close(m, now, True, f"reloaded: generation {m.generation}", "applied")
        else:
            self._close(m, now, False, "a newer reload took its place", "superseded")

    def _close(self, m: Machine, now: float, ok: bool, message: str, kind: str) -> None:
        r, self.reload = self.reload, None
        assert r is not None
        doc = {
            "event": "reload",
            "trigger": r.trigger,
            "mode": r.mode,
            "duration": round(now - r.at, 3),
            "verdict": kind,
            "ok": ok,
            "message": message,
            "generation": m.generation,
        }
        self.record(doc, r.wall)

    def refused(self, message: str, kind: str, trigger: str) -> None:
        """A reload that never reached uWSGI (bad spec, import check, quarantine)."""
        self.record({"event": "refused", "trigger": trigger, "verdict": kind, "message": message})

    # -- out --------------------------------------------------------------------

    def record(self, doc: dict[str, Any], at: Optional[float] = None) -> None:
        doc = {"at": round(time.time() if at is None else at, 3), **doc}
        for listener in self.listeners:
            listener(doc)
        if self.path is not None:
            self._append(self.path, json.dumps(doc, sort_keys=False) + "\n")
        if self.to_journal:
            journal.send(self._journal_fields(doc))

    def _append(self, path: Path, line: str) -> None:
        data = line.encode("utf-8", "replace")
        try:
            try:
                if os.stat(path).st_size + len(data) > MAX_BYTES:
                    os.replace(path, path.with_name(path.name + ".1"))
            except FileNotFoundError:
                pass
            fd = open_private(path, os.O_WRONLY | os.O_APPEND)
            try:
                os.write(fd, data)
            finally:
                os.close(fd)
            self.write_failed = False
        except OSError as exc:
            if not self.write_failed:  # a full disk must not flood the journal
                self.log_error(f"cannot write the event history {path}: {exc}")
            self.write_failed = True

    def _journal_fields(self, doc: dict[str, Any]) -> dict[str, str]:
        fields = {
            "MESSAGE": f"{self.name}: {describe(doc)}",
            "PRIORITY": str(PRIORITY.get(doc["event"], 6)),
            "SYSLOG_IDENTIFIER": "uwsgi-supervisor",
            "UWSGI_SUPERVISOR_APP": self.name,
        }
        for key, value in doc.items():
            if key == "lines":
                fields["UWSGI_SUPERVISOR_LINES"] = "\n".join(value)
            elif value is not None:
                fields[f"UWSGI_SUPERVISOR_{key.upper()}"] = str(value)
        return fields


def _wall(at: float, now: float) -> float:
    """The wall-clock time of monotonic `at`, seen at monotonic `now`."""
    return time.time() - (now - at)


def describe(doc: dict[str, Any]) -> str:
    """One line for a person: what happened and why."""
    kind = doc.get("event")
    if kind == "start":
        return f"start ({doc.get('why')})"
    if kind == "crash":
        after = "gave up" if doc.get("gave_up") else f"restart in {doc.get('restart_in')} s"
        cause = f": {doc['cause']}" if doc.get("cause") else ""
        return f"crash {doc.get('crashes')}: uWSGI {doc.get('how')}{cause}; {after}"
    if kind == "reload":
        return (
            f"{doc.get('mode')} reload ({doc.get('trigger')}): {doc.get('verdict')}"
            f" in {doc.get('duration')} s: {doc.get('message')}"
        )
    if kind == "refused":
        return f"reload refused ({doc.get('trigger')}): {doc.get('message')}"
    if kind == "rollback":
        return f"rolled back: {doc.get('why')}"
    if kind == "stop":
        return f"stopped: {doc.get('how')}"
    return json.dumps(doc)


def read_events(path: Path) -> Iterator[dict[str, Any]]:
    """Every event still kept, oldest first; lines that do not parse are skipped."""
    for part in (path.with_name(path.name + ".1"), path):
        try:
            with open(part, "rb") as f:
                for raw in f:
                    try:
                        doc = json.loads(raw)
                    except ValueError:
                        continue  # half a line: the disk filled up mid-write
                    if isinstance(doc, dict) and "event" in doc:
                        yield doc
        except FileNotFoundError:
            continue
