"""When the supervisor has uWSGI reopen its `logto` file (supervisor/uwsgi/logfile.py).

Real files in a temp dir, no uWSGI: the decisions (rotated or not, ready
for uWSGI or not, made anew after a grace moment) on the time passed in.
"""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

import pytest
from fakes import make_spec

from supervisor.uwsgi import logfile
from supervisor.uwsgi.logfile import CREATE_GRACE, Rotation, ident, open_logto


def rotation(tmp: Path) -> tuple[Rotation, Path, list[str]]:
    log = tmp / "app.log"
    rot = Rotation(replace(make_spec(), logto=log), log)
    fd = open_logto(log, {})
    rot.opened(fd)
    os.close(fd)
    return rot, log, []


def test_nothing_to_do_while_the_path_names_the_file_uwsgi_writes(tmp_path: Path) -> None:
    rot, log, said = rotation(tmp_path)
    assert rot.due(0.0, said.append) is None
    log.write_text("appended\n")  # the same file, grown
    assert rot.due(1.0, said.append) is None and said == []


def test_a_file_put_in_place_by_logrotate_is_reopened_once(tmp_path: Path) -> None:
    rot, log, said = rotation(tmp_path)
    log.rename(tmp_path / "app.log.1")
    log.touch(mode=0o600)  # logrotate's `create`
    new = ident(log.stat())
    assert rot.due(0.0, said.append) == new
    rot.reopened(new)
    assert rot.due(0.1, said.append) is None and said == []


def test_a_moved_log_is_made_anew_only_after_the_grace(tmp_path: Path) -> None:
    rot, log, said = rotation(tmp_path)
    log.rename(tmp_path / "app.log.1")  # `mv`, or logrotate about to `create`
    assert rot.due(10.0, said.append) is None
    assert not log.exists()  # logrotate's `create` may follow its rename at once
    assert rot.due(10.0 + CREATE_GRACE / 2, said.append) is None and not log.exists()
    made = rot.due(10.0 + CREATE_GRACE, said.append)
    assert made == ident(log.stat()) and said == []
    assert log.stat().st_mode & 0o777 == 0o600


def test_an_adopted_master_reopens_once(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    log.touch()
    rot = Rotation(replace(make_spec(), logto=log), log)  # never `opened`: unknown
    assert rot.due(0.0, [].append) == ident(log.stat())


def test_open_logto_appends_and_never_truncates(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    log.write_text("kept\n")
    fd = open_logto(log, {})
    os.write(fd, b"more\n")
    os.close(fd)
    assert log.read_text() == "kept\nmore\n"


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to switch to another user")
def test_a_file_the_service_user_cannot_write_is_reported_once_and_not_reopened(
    short_tmp: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    os.chmod(short_tmp, 0o755)  # the user may reach it: only the file is wrong
    log = short_tmp / "app.log"
    spec = replace(make_spec(), logto=log, user="nobody")
    rot = Rotation(spec, log)
    fd = open_logto(log, rot.credentials)
    rot.opened(fd)
    os.close(fd)
    assert log.stat().st_uid == rot.credentials["user"]  # ours to make: the user's
    log.rename(short_tmp / "app.log.1")
    log.touch(mode=0o600)  # root's, as `create root root` would make it
    said: list[str] = []
    for now in (0.0, 0.2, 0.4):
        assert rot.due(now, said.append) is None
    assert len(said) == 1, said
    assert "user nobody cannot write" in said[0] and "`create`" in said[0], said[0]
    probes = []
    monkeypatch.setattr(logfile, "access_problems", lambda *a: probes.append(a) or {0: "no"})
    assert rot.due(0.5, said.append) is None and probes == []  # the same file: asked once
    monkeypatch.undo()
    os.chown(log, rot.credentials["user"], rot.credentials["group"])  # the operator's fix
    assert rot.due(0.6, said.append) == ident(log.stat())


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to switch to another user")
def test_a_log_the_service_user_cannot_write_is_reported_at_start(short_tmp: Path) -> None:
    os.chmod(short_tmp, 0o755)
    log = short_tmp / "app.log"
    log.touch(mode=0o600)  # root's, made before: uWSGI opens it as root at start
    rot = Rotation(replace(make_spec(), logto=log, user="nobody"), log)
    fd = open_logto(log, rot.credentials)
    rot.opened(fd)
    os.close(fd)
    said: list[str] = []
    for now in (0.0, 0.2):
        assert rot.due(now, said.append) is None
    assert len(said) == 1 and "could not reopen it" in said[0], said
