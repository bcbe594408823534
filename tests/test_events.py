"""The event history: a crash, a refused push and a reload, as `events` shows
them (real supervisor, real uWSGI, real inotify); the file's cap; the
journal's native protocol over a real datagram socket."""

from __future__ import annotations

import json
import os
import signal
import socket
import struct
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from harness import Supervised, copy_app, spec_yaml
from kit.app import set_version
from kit.net import free_port, serves
from kit.wait import wait_until

from supervisor import history
from supervisor.history import History, read_events
from supervisor.systemd import journal

FAST_BAKE = "health:\n  bake: 1s\n"


def events(sup: Supervised, *args: str) -> list[dict[str, Any]]:
    r = sup.cli("events", "--json", "-n", "100", *args, str(sup.spec))
    assert r.returncode == 0, r.stderr  # a spec that no longer loads too: said, then read
    return [json.loads(line) for line in r.stdout.splitlines()]


def reloads(sup: Supervised) -> list[dict[str, Any]]:
    return [e for e in events(sup) if e["event"] == "reload"]


def test_a_crash_a_refused_push_and_a_reload_are_told_with_their_causes(short_tmp: Path) -> None:
    app = copy_app("blog", short_tmp / "app")
    code = app / "blog.py"
    port = free_port()
    sup = Supervised(short_tmp, spec_yaml(app, short_tmp / "rt", "blog:app", port, FAST_BAKE))
    with sup:
        sup.start()
        # 1. A crash: the master killed, as the OOM killer would.
        os.kill(sup.uwsgi_pid(), signal.SIGKILL)
        wait_until(lambda: any(e["event"] == "crash" for e in events(sup)), 30, "the crash")
        sup.wait_state("running")
        # 2. A push that does not import: its new master is refused, the old
        #    code keeps serving.
        code.write_text(code.read_text() + "\nimport flask_nonexistent_module\n")
        wait_until(lambda: reloads(sup), 60, "the refused reload")
        assert serves(port, "v1")
        # 3. A good push: swapped in, baked, applied.
        code.write_text(code.read_text().replace("\nimport flask_nonexistent_module\n", "\n"))
        set_version(code, "v2")
        wait_until(lambda: len(reloads(sup)) == 2, 60, "the applied reload")
        assert serves(port, "v2")
        # 4. A spec that no longer parses, re-read on SIGHUP: refused before uWSGI.
        sup.spec.write_text(sup.spec.read_text() + "bogus_key: 1\n")
        sup.signal(signal.SIGHUP)
        wait_until(lambda: any(e["event"] == "refused" for e in events(sup)), 30, "the refusal")

        found = events(sup)
        crash = next(e for e in found if e["event"] == "crash")
        assert crash["how"] == "killed by SIGKILL"
        assert crash["restart_in"] >= 0 and crash["crashes"] == 1
        assert isinstance(crash["lines"], list) and len(crash["lines"]) <= history.TAIL_LINES
        bad, good = reloads(sup)
        assert bad["ok"] is False and bad["verdict"].startswith("refused"), bad
        assert "flask_nonexistent_module" in bad["message"], bad
        assert bad["mode"] == "swap" and "blog.py" in bad["trigger"], bad
        assert good["ok"] is True and good["verdict"] == "applied", good
        assert good["mode"] == "swap" and "blog.py" in good["trigger"], good
        assert good["duration"] >= 1.0  # the bake is part of it
        refused = next(e for e in found if e["event"] == "refused")
        assert refused["trigger"] == "SIGHUP" and "bogus_key" in refused["message"], refused
        # In the order they happened, each with its wall-clock time.
        kinds = [e["event"] for e in found]
        assert kinds.index("crash") < kinds.index("reload") < kinds.index("refused")
        assert [e["at"] for e in found] == sorted(e["at"] for e in found)

        # What a person reads: a line per event, the cause in it.
        table = sup.cli("events", str(sup.spec)).stdout
        assert "crash 1: uWSGI killed by SIGKILL" in table
        assert "flask_nonexistent_module" in table
        assert "swap reload" in table and "applied" in table
        assert "start (start)" in table
    # The stop, recorded once the supervisor is gone; `events` still reads it.
    after = events(sup)
    assert after[-1]["event"] == "stop", after[-1]
    assert events(sup, "--since", "1h")[-1]["event"] == "stop"
    r = sup.cli("events", "--since", "someday", str(sup.spec))
    assert r.returncode == 2 and "neither a span" in r.stderr


def test_the_history_file_is_capped_and_keeps_the_newest(tmp_path: Path) -> None:
    """A month of crash loops: the file is rotated past MAX_BYTES, at most two kept."""
    errors: list[str] = []
    h = History("blog", tmp_path / "state", errors.append, to_journal=False)
    line = "x" * 300
    for i in range(20_000):  # ~6 MB of events against a 1 MiB cap
        h.record({"event": "crash", "n": i, "lines": [line]})
    path = tmp_path / "state" / history.FILE
    older = path.with_name(path.name + ".1")
    assert path.stat().st_size <= history.MAX_BYTES
    assert older.stat().st_size <= history.MAX_BYTES
    assert sorted(p.name for p in path.parent.iterdir()) == [history.FILE, history.FILE + ".1"]
    kept = [e["n"] for e in read_events(path)]
    assert kept[-1] == 19_999 and kept == list(range(kept[0], 20_000))  # newest, none lost between
    assert errors == []
    assert oct(path.stat().st_mode & 0o777) == "0o600"


def test_a_history_that_cannot_be_written_is_said_once_and_supervision_goes_on(
    tmp_path: Path,
) -> None:
    errors: list[str] = []
    state = tmp_path / "state"
    h = History("blog", state, errors.append, to_journal=False)
    state.rmdir()
    state.write_text("")  # the dir gone, a file in its place: every open() fails
    for _ in range(5):
        h.record({"event": "start", "why": "start"})
    assert len(errors) == 1 and "cannot write the event history" in errors[0]


def test_journal_entries_use_the_native_protocol(short_tmp: Path) -> None:
    """What journald receives, read back from a real datagram socket: newlines in
    a value take the length-prefixed form."""
    path = short_tmp / "journal.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    try:
        sent = journal.send(
            {"MESSAGE": "blog: crash", "UWSGI_SUPERVISOR_LINES": "a\nb"}, str(path)
        )
        assert sent
        data = sock.recv(65536)
    finally:
        sock.close()
    assert data.startswith(b"MESSAGE=blog: crash\nUWSGI_SUPERVISOR_LINES\n")
    rest = data[len(b"MESSAGE=blog: crash\nUWSGI_SUPERVISOR_LINES\n") :]
    (size,) = struct.unpack("<Q", rest[:8])
    assert rest[8 : 8 + size] == b"a\nb" and rest[8 + size :] == b"\n"
    assert journal.send({"MESSAGE": "x"}, str(short_tmp / "nobody.sock")) is False


@pytest.mark.parametrize(
    ("text", "back"), [("30m", 1800), ("2h", 7200), ("1d", 86400), ("1.5 h", 5400)]
)
def test_since_takes_spans(text: str, back: float) -> None:
    from supervisor.eventscli import since_time

    assert since_time(text, now=1_000_000.0) == 1_000_000.0 - back


def test_follow_prints_new_events_as_they_are_recorded(tmp_path: Path) -> None:
    """`events --follow` (what an operator leaves open during a deploy), on the file
    a supervisor writes."""
    spec = tmp_path / "blog.yaml"
    state = tmp_path / "state"
    spec.write_text(f"app:\n  module: blog:app\n  chdir: {tmp_path}/app\nstate_dir: {state}\n")
    h = History("blog", state, lambda _: None, to_journal=False)
    h.record({"event": "start", "why": "start"})
    follow = subprocess.Popen(
        [sys.executable, "-m", "supervisor", "events", "--follow", "--json", str(spec)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert follow.stdout is not None
        assert json.loads(follow.stdout.readline())["event"] == "start"  # the history so far
        time.sleep(0.1)  # newer than the last one shown
        h.record({"event": "crash", "how": "killed by SIGKILL", "crashes": 1})
        assert json.loads(follow.stdout.readline())["how"] == "killed by SIGKILL"
    finally:
        follow.kill()
        follow.wait()
