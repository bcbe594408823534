"""Host facts a spec names that the kernel or pwd/grp refuse: one FILE:LINE:COL line, exit 78.

Before, these ended `check` and `run` in a Python traceback and exit 1
(which systemd restarts every second): a chdir or module name past the
kernel's limits, a uid or gid past 2^32, a chdir under a directory the user
cannot enter. Each is tried through `load_spec` and the real CLI.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import require

from supervisor.spec import SpecError, load_spec

CLI = Path(sys.executable).parent / "uwsgi-supervisor"
ENV = {"RUNTIME_DIRECTORY": "/run/uwsgi-supervisor/blog", "PATH": "/usr/bin:/bin"}
NOBODY = 65534
LONG_NAME = "a" * 300  # past NAME_MAX (255 bytes)
LONG_PATH = "/" + "/".join(["b" * 100] * 45)  # 4,545 bytes: past PATH_MAX (4096)


@pytest.fixture
def app(tmp_path: Path) -> Path:
    (tmp_path / "app").mkdir()
    (tmp_path / "app" / "blog.py").write_text("app = object()\n")
    return tmp_path / "app"


def spec_text(chdir: str, module: str = "blog", extra: str = "") -> str:
    return (
        f"app:\n  module: '{module}:app'\n  chdir: {chdir}\n"
        f"uwsgi:\n  binary: /bin/true\n{extra}"
    )


def one_problem(path: Path, environ: dict[str, str] = ENV) -> str:
    """The single rendered problem `load_spec` and `uwsgi-supervisor check` give."""
    with pytest.raises(SpecError) as caught:
        load_spec(path, environ)
    assert len(caught.value.problems) == 1, str(caught.value)
    done = subprocess.run(
        [str(CLI), "check", str(path)],
        capture_output=True,
        text=True,
        env={**os.environ, **environ},
        timeout=60,
    )
    assert done.returncode == 78, done.stderr
    assert "Traceback" not in done.stderr
    assert done.stderr.strip() == str(caught.value)
    head = done.stderr.splitlines()[0]
    assert re.match(rf"{re.escape(str(path))}:\d+:\d+: \S+: ", head), head
    return head


CASES = {
    "chdir_name_too_long": (lambda app: spec_text(f"{app}/{LONG_NAME}"), "app.chdir", "too long"),
    "chdir_path_too_long": (lambda app: spec_text(LONG_PATH), "app.chdir", "too long"),
    "module_name_too_long": (lambda app: spec_text(str(app), LONG_NAME), "app.module", "too long"),
    "module_path_too_long": (
        lambda app: spec_text(str(app), ".".join(["m" * 100] * 45)),
        "app.module",
        "too long",
    ),
    "gid_past_2_32": (
        lambda app: spec_text(str(app), extra="group: '4294967296'\n"),
        "group",
        "past the largest",
    ),
    "gid_huge": (
        lambda app: spec_text(str(app), extra="group: '" + "9" * 40 + "'\n"),
        "group",
        "past the largest",
    ),
    "uid_huge": (
        lambda app: spec_text(str(app), extra="user: '" + "9" * 5000 + "'\n"),
        "user",
        "past the largest",
    ),
    "nginx_group_huge": (
        lambda app: spec_text(str(app), extra="nginx:\n  group: '18446744073709551616'\n"),
        "nginx.group",
        "past the largest",
    ),
    "watch_path_too_long": (
        lambda app: spec_text(str(app), extra=f"watch:\n  paths: ['{LONG_PATH}']\n"),
        "watch.paths[0]",
        "too long",
    ),
    "logto_too_long": (
        lambda app: spec_text(str(app), extra=f"logto: {app}/{LONG_NAME}/x.log\n"),
        "logto",
        "too long",
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_kernel_and_id_limits_are_one_problem(case: str, app: Path, tmp_path: Path) -> None:
    text, key, message = CASES[case]
    path = tmp_path / "blog.yaml"
    path.write_text(text(app))

    head = one_problem(path)

    assert f": {key}: " in head and message in head, head
    assert len(head) < 400, "a path of kilobytes is shortened in the message"


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A directory `nobody` can read (pytest's tmp_path is root's, 0700)."""
    path = Path(tempfile.mkdtemp(prefix="usup-host-", dir="/tmp"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def test_chdir_under_a_directory_the_user_cannot_enter(shared_dir: Path) -> None:
    require(os.geteuid() == 0, "needs root to run the check as nobody")
    require(shutil.which("setpriv") is not None, "needs setpriv (util-linux)")
    secret = shared_dir / "secret"
    (secret / "app").mkdir(parents=True)
    secret.chmod(0o700)  # root's: nobody cannot look inside
    spec = shared_dir / "blog.yaml"
    spec.write_text(spec_text(f"{secret}/app"))
    spec.chmod(0o644)
    as_nobody = ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups"]

    done = subprocess.run(
        [*as_nobody, str(CLI), "check", str(spec)],
        capture_output=True,
        text=True,
        env={**os.environ, **ENV},
        timeout=60,
        cwd="/",
    )

    assert done.returncode == 78, done.stderr
    assert "Traceback" not in done.stderr
    (head, source, caret) = done.stderr.splitlines()
    assert head == (
        f"{spec}:3:10: app.chdir: cannot look at {secret}/app: permission denied "
        "(a directory on the way is not searchable by the user running this check); "
        "fix the permissions or the path"
    )
    assert source == f"      chdir: {secret}/app"
