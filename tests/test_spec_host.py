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


# ---- check refuses what run cannot do (issue 10, item 6) -------------------------


def problems(path: Path, environ: dict[str, str] = ENV) -> list[tuple[str, str]]:
    with pytest.raises(SpecError) as caught:
        load_spec(path, environ)
    return [(p.key, p.message) for p in caught.value.problems]


@pytest.mark.parametrize(
    ("extra", "key"),
    [
        ('  socket: "/run/blog\\0.sock"\n', "uwsgi.socket"),
        ('  options:\n    harakiri: "3\\0"\n', "uwsgi.options[harakiri]"),
        ('  options:\n    cron: ["a", "b\\0"]\n', "uwsgi.options[cron]"),
    ],
)
def test_nul_byte_in_uwsgi_values(extra: str, key: str, app: Path, tmp_path: Path) -> None:
    path = tmp_path / "blog.yaml"
    path.write_text(spec_text(str(app), extra=extra))
    [(got_key, message)] = problems(path)
    assert got_key.startswith(key.split("[")[0]), got_key
    assert "NUL byte" in message


@pytest.mark.parametrize(
    ("env", "key", "message"),
    [
        ('    SECRET: "a\\0b"\n', "app.env.SECRET", "NUL byte"),
        ('    "A\\0B": x\n', "app.env", "not a valid environment variable name"),
        ('    V: "\\ud800"\n', "app.env.V", "lone surrogate"),
    ],
)
def test_bad_text_in_app_env(env: str, key: str, message: str, app: Path, tmp_path: Path) -> None:
    path = tmp_path / "blog.yaml"
    text = spec_text(str(app)).replace("uwsgi:", f"  env:\n{env}uwsgi:")
    path.write_text(text)
    with pytest.raises(SpecError) as caught:
        load_spec(path, ENV)
    [problem] = caught.value.problems
    assert problem.key.startswith(key) and message in problem.message, str(caught.value)
    assert "\0" not in str(caught.value), "a NUL never reaches the terminal"


def test_nul_byte_in_a_path(app: Path, tmp_path: Path) -> None:
    path = tmp_path / "blog.yaml"
    path.write_text(spec_text(f'"{app}\\0x"'))
    assert problems(path) == [
        (
            "app.chdir",
            "contains a NUL byte (\\0), which no path, socket, option or environment"
            " variable can hold; remove it",
        )
    ]


def test_runtime_dir_that_is_a_file(app: Path, tmp_path: Path) -> None:
    (tmp_path / "rt").write_text("")
    path = tmp_path / "blog.yaml"
    path.write_text(spec_text(str(app), extra=f"runtime_dir: {tmp_path}/rt\n"))
    assert problems(path) == [
        ("runtime_dir", f"{tmp_path}/rt is a regular file; give a directory (or one to create)")
    ]
    path.write_text(spec_text(str(app), extra=f"runtime_dir: {tmp_path}/rt/blog\n"))
    assert problems(path) == [
        ("runtime_dir", f"{tmp_path}/rt/blog cannot be created: {tmp_path}/rt is a regular file")
    ]
    # The default (systemd's RUNTIME_DIRECTORY) is checked the same way.
    path.write_text(spec_text(str(app)))
    [(key, message)] = problems(path, {**ENV, "RUNTIME_DIRECTORY": f"{tmp_path}/rt"})
    assert key == "runtime_dir" and "is a regular file" in message and "set runtime_dir" in message


@pytest.mark.parametrize(
    ("extra", "key", "message"),
    [
        ("  processes: 99999999999999999999999999999\n", "uwsgi.processes", "must be at most 1024"),
        ("  processes: " + "9" * 5000 + "\n", "uwsgi.processes", "far too large"),
        ("  threads: 5000\n", "uwsgi.threads", "must be at most 1024"),
        ("  listen: 1000000\n", "uwsgi.listen", "must be at most 65535"),
        ("start:\n  timeout: 1.0e+300\n", "start.timeout", "longer than a day"),
        ("stop:\n  timeout: 100000h\n", "stop.timeout", "longer than a day"),
        ("restart:\n  backoff:\n    factor: 1.0e+300\n", "restart.backoff.factor", "from 1 to 10"),
        ("restart:\n  max_attempts: 10000000000\n", "restart.max_attempts", "at most 1000000"),
        ("watch:\n  debounce: 99999999999s\n", "watch.debounce", "longer than a day"),
    ],
)
def test_absurd_numbers(extra: str, key: str, message: str, app: Path, tmp_path: Path) -> None:
    path = tmp_path / "blog.yaml"
    text = spec_text(str(app), extra=extra if extra.startswith("  ") else "")
    path.write_text(text + ("" if extra.startswith("  ") else extra))
    got = problems(path)
    assert [k for k, _ in got] == [key], got
    assert message in got[0][1], got
    assert len(got[0][1]) < 300


# ---- as the service user --------------------------------------------------------


def nobody_spec(shared_dir: Path, chdir: Path, extra: str = "", binary: str = "/bin/true") -> Path:
    require(os.geteuid() == 0, "needs root to check the spec as user nobody")
    spec = shared_dir / "blog.yaml"
    spec.write_text(
        f"user: nobody\napp:\n  module: 'blog:app'\n  chdir: {chdir}\n{extra}"
        f"uwsgi:\n  binary: {binary}\n"
    )
    return spec


def app_in(directory: Path) -> Path:
    (directory / "app").mkdir(parents=True)
    (directory / "app" / "blog.py").write_text("app = 1\n")
    return directory / "app"


def test_service_user_can_use_a_readable_tree(shared_dir: Path) -> None:
    spec = nobody_spec(shared_dir, app_in(shared_dir))
    assert load_spec(spec, ENV).user == "nobody"


def test_binary_the_service_user_cannot_execute(shared_dir: Path) -> None:
    private = shared_dir / "private"
    private.mkdir(mode=0o700)
    shutil.copy("/bin/true", private / "uwsgi")
    owned = shared_dir / "uwsgi"
    shutil.copy("/bin/true", owned)
    owned.chmod(0o744)  # root may run it; nobody may not
    app = app_in(shared_dir)

    assert problems(nobody_spec(shared_dir, app, binary=str(private / "uwsgi"))) == [
        (
            "uwsgi.binary",
            f"user nobody cannot reach {private}/uwsgi: no search permission on {private}; "
            f"let user nobody through (e.g. chmod o+x {private}) or move it",
        )
    ]
    assert problems(nobody_spec(shared_dir, app, binary=str(owned))) == [
        ("uwsgi.binary", f"user nobody cannot execute {owned}; fix its owner or mode"
         " (uWSGI runs as user nobody)")
    ]


def test_virtualenv_and_chdir_the_service_user_cannot_use(shared_dir: Path) -> None:
    venv = shared_dir / "venv"
    (venv / "bin").mkdir(parents=True)
    (venv / "bin" / "python").write_text("")
    (venv / "bin" / "python").chmod(0o700)
    app = app_in(shared_dir / "srv")
    app.chmod(0o711)  # enterable, not listable
    spec = nobody_spec(shared_dir, app, extra=f"  virtualenv: {venv}\n")

    got = dict(problems(spec))

    assert got == {
        "app.chdir": f"user nobody cannot enter and read {app}; fix its owner or mode"
        " (uWSGI runs as user nobody)",
        "app.virtualenv": f"user nobody cannot execute {venv}/bin/python; fix its owner or mode"
        " (uWSGI runs as user nobody)",
    }
    # A group that may: the user's own groups and the spec's group count.
    (venv / "bin" / "python").chmod(0o750)
    os.chown(venv / "bin" / "python", 0, 65534)
    app.chmod(0o755)
    spec.write_text(spec.read_text().replace("user: nobody\n", "user: nobody\ngroup: '65534'\n"))
    assert load_spec(spec, ENV).group == "65534"


def test_a_key_of_spaces_is_shown_in_brackets(app: Path, tmp_path: Path) -> None:
    # Found by tests/test_fuzz.py: `' ': null` gave "FILE:1:1:  : unknown key ' '".
    path = tmp_path / "blog.yaml"
    path.write_text("' ': null\n'': 1\n" + spec_text(str(app)))
    with pytest.raises(SpecError) as caught:
        load_spec(path, ENV)
    assert [p.key for p in caught.value.problems] == ["[ ]", "[]"]
    assert str(caught.value).startswith(f"{path}:1:1: [ ]: unknown key ' '; ")
