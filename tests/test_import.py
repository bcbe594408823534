"""`uwsgi-supervisor import` on a corpus of real-world uWSGI setups.

Each directory of tests/data/import is one case: the files of a hand setup
(ini files, nginx configs, the app tree they name), `args` (the command's
arguments; default `uwsgi.ini`) and what must come out: `expected.yaml`
(the spec) and `expected.stderr`, or `expected.err` (the message of a
refused import). `{DIR}` in any of them stands for the case's directory,
copied to a temporary one. A spec that comes out must pass `check` there.

After a deliberate change to the importer, rewrite the expected files with
`.venv/bin/python tests/test_import.py` and read the diff.
"""

from __future__ import annotations

import io
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from supervisor.cli import build_parser
from supervisor.exitcodes import Exit
from supervisor.importer import options
from supervisor.importer.command import run_import
from supervisor.importer.draft import scalar

CORPUS = Path(__file__).resolve().parent / "data" / "import"
CASES = sorted(p.name for p in CORPUS.iterdir() if p.is_dir())
SUPERVISOR = [sys.executable, "-m", "supervisor"]
EXPECTED = ("expected.yaml", "expected.stderr", "expected.err")


@dataclass
class Run:
    code: int
    spec: str  # the spec written (stdout, or the -o file)
    stderr: str
    where: Path


def run_case(case: str, tmp: Path) -> Run:
    """Copy the case to tmp/CASE, fill in {DIR}, import; nothing compared yet."""
    where = tmp / case
    shutil.copytree(CORPUS / case, where, ignore=shutil.ignore_patterns(*EXPECTED))
    for path in where.rglob("*"):
        if path.is_file() and not path.is_symlink():
            text = path.read_bytes()
            if b"{DIR}" in text:
                path.write_bytes(text.replace(b"{DIR}", str(where).encode()))
    args_file = where / "args"
    args = shlex.split(args_file.read_text()) if args_file.exists() else ["uwsgi.ini"]
    done = subprocess.run(
        [*SUPERVISOR, "import", *args],
        cwd=where,
        capture_output=True,
        text=True,
        timeout=60,
    )
    spec = done.stdout
    if "-o" in args:
        out = where / args[args.index("-o") + 1]
        assert done.stdout == "", "with -o, nothing goes to stdout"
        spec = out.read_text() if out.exists() else ""
    return Run(done.returncode, spec, done.stderr, where)


def expected(case: str, name: str, where: Path) -> str:
    return (CORPUS / case / name).read_text().replace("{DIR}", str(where))


@pytest.fixture
def corpus_tmp() -> Iterator[Path]:
    # Short (unix socket paths) and open to others: a case's service user
    # (www-data) must reach the app tree for `check` to pass.
    path = Path(tempfile.mkdtemp(prefix="usup-imp-", dir="/tmp"))
    os.chmod(path, 0o711)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_the_corpus_has_ten_shapes_and_more() -> None:
    assert len(CASES) >= 12, CASES
    refused = [c for c in CASES if (CORPUS / c / "expected.err").exists()]
    assert refused and len(refused) < len(CASES)


@pytest.mark.parametrize("case", CASES)
def test_corpus_case(case: str, corpus_tmp: Path) -> None:
    run = run_case(case, corpus_tmp)
    if (CORPUS / case / "expected.err").exists():
        assert run.code == Exit.CONFIG, run.stderr
        assert run.spec == ""
        assert run.stderr == expected(case, "expected.err", run.where)
        return
    assert run.code == 0, run.stderr
    assert run.spec == expected(case, "expected.yaml", run.where)
    assert run.stderr == expected(case, "expected.stderr", run.where)
    assert "check will say" not in run.stderr
    spec = run.where / "imported.yaml"
    spec.write_text(run.spec)
    check = subprocess.run(
        [*SUPERVISOR, "check", str(spec)], capture_output=True, text=True, timeout=60
    )
    assert check.returncode == 0, check.stderr


# ---- the command's own choices ---------------------------------------------


def _import(where: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*SUPERVISOR, "import", *args], cwd=where, capture_output=True, text=True, timeout=60
    )


def _app(where: Path, ini: str) -> None:
    (where / "app.py").write_text("app = None\n")
    (where / "uwsgi.ini").write_text(ini)


def test_output_is_not_overwritten_without_force(short_tmp: Path) -> None:
    _app(short_tmp, "[uwsgi]\nmodule = app:app\nsocket = 127.0.0.1:3031\n")
    (short_tmp / "app.yaml").write_text("precious\n")
    refused = _import(short_tmp, "uwsgi.ini", "-o", "app.yaml")
    assert refused.returncode == Exit.CANTCREAT
    assert "app.yaml exists; --force overwrites it" in refused.stderr
    assert (short_tmp / "app.yaml").read_text() == "precious\n"
    forced = _import(short_tmp, "uwsgi.ini", "-o", "app.yaml", "--force")
    assert forced.returncode == 0, forced.stderr
    assert yaml.safe_load((short_tmp / "app.yaml").read_text())["name"] == "app"
    assert [p.name for p in short_tmp.iterdir() if p.name.startswith(".")] == []


def test_socket_option_takes_loopback_and_unix_only(short_tmp: Path) -> None:
    _app(short_tmp, "[uwsgi]\nmodule = app:app\nsocket = :7777\n")
    public = _import(short_tmp, "uwsgi.ini", "--socket", "0.0.0.0:7777")
    assert public.returncode == Exit.USAGE
    assert "listens on all network interfaces" in public.stderr
    local = _import(short_tmp, "uwsgi.ini", "--socket", "127.0.0.1:7777", "--name", "blog")
    assert local.returncode == 0, local.stderr
    spec = yaml.safe_load(local.stdout)
    assert (spec["name"], spec["uwsgi"]["socket"]) == ("blog", "127.0.0.1:7777")
    assert "nginx" not in spec  # nginx.group is for unix sockets only
    assert "socket = :7777: NOT carried over" not in local.stderr  # --socket said it


def test_the_refused_public_socket_is_said_in_the_spec_and_on_stderr(short_tmp: Path) -> None:
    _app(short_tmp, "[uwsgi]\nmodule = app:app\nsocket = 0.0.0.0:7777\n")
    done = _import(short_tmp, "uwsgi.ini", "--name", "app")
    assert done.returncode == 0, done.stderr
    assert "uwsgi.ini:3: socket = 0.0.0.0:7777: NOT carried over" in done.stderr
    assert "--socket 127.0.0.1:7777" in done.stderr
    assert "# NOT CARRIED OVER: it listens on all network interfaces" in done.stdout
    assert yaml.safe_load(done.stdout)["uwsgi"]["socket"] == "/run/uwsgi-supervisor/app.sock"


def test_help_names_the_section_form_and_the_nginx_option(short_tmp: Path) -> None:
    done = _import(short_tmp, "--help")
    assert done.returncode == 0
    assert "FILE:SECTION" in done.stdout and "--nginx CONF" in done.stdout


def test_a_missing_ini_is_one_line_and_exit_78(short_tmp: Path) -> None:
    done = _import(short_tmp, "nope.ini")
    assert done.returncode == Exit.CONFIG
    assert done.stderr.splitlines()[0] == "nope.ini: cannot read it: No such file or directory"


def test_a_missing_nginx_config_is_one_line_and_exit_78(short_tmp: Path) -> None:
    _app(short_tmp, "[uwsgi]\nmodule = app:app\n")
    done = _import(short_tmp, "uwsgi.ini", "--nginx", "nope.conf")
    assert done.returncode == Exit.CONFIG
    assert done.stderr == "nope.conf: cannot read it: No such file or directory\n"


def test_a_repeated_module_is_the_last_and_said(short_tmp: Path) -> None:
    _app(short_tmp, "[uwsgi]\nmodule = old:app\nmodule = app:app\n")
    done = _import(short_tmp, "uwsgi.ini")
    assert yaml.safe_load(done.stdout)["app"]["module"] == "app:app"
    assert "uwsgi.ini:3: module is given 2 times (uwsgi.ini:2, uwsgi.ini:3)" in done.stderr


def test_numbers_are_read_as_uwsgi_reads_them(short_tmp: Path) -> None:
    _app(short_tmp, "[uwsgi]\nmodule = app:app\nprocesses = 4 ; four\nthreads = many\n")
    done = _import(short_tmp, "uwsgi.ini")
    assert yaml.safe_load(done.stdout)["uwsgi"]["processes"] == 4
    assert "uwsgi.ini:3: uWSGI read '4 ; four' as 4 (its leading digits)" in done.stderr
    assert "not carried over: uwsgi.ini line 4: threads = many: not a whole number" in done.stderr


def test_options_repeat_as_lists_and_flags_keep_the_last(short_tmp: Path) -> None:
    ini = (
        "[uwsgi]\nmodule = app:app\nattach-daemon = a\nattach-daemon = b\n"
        "enable-threads = true\nenable-threads = off\n"
    )
    _app(short_tmp, ini)
    done = _import(short_tmp, "uwsgi.ini")
    passed = yaml.safe_load(done.stdout)["uwsgi"]["options"]
    assert passed == {"attach-daemon": ["a", "b"], "enable-threads": False}


def test_missing_paths_are_said_on_stderr_not_refused(short_tmp: Path) -> None:
    (short_tmp / "uwsgi.ini").write_text("[uwsgi]\nchdir = /srv/gone\nmodule = blog:app\n")
    done = _import(short_tmp, "uwsgi.ini")
    assert done.returncode == 0, done.stderr
    assert "check will say: app.chdir: /srv/gone does not exist" in done.stderr


def test_without_a_uwsgi_to_ask_options_are_carried_unchecked(
    short_tmp: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_uwsgi(binary: object, path: object) -> str:
        raise ValueError("no uwsgi binary here")

    monkeypatch.setattr(options, "uwsgi_binary", no_uwsgi)
    _app(short_tmp, "[uwsgi]\nproject = app\nmodule = %(project):app\nharakiri = 30\n")
    args = build_parser().parse_args(["import", "uwsgi.ini"])
    out, err = io.StringIO(), io.StringIO()
    assert run_import(args, {"PATH": "/nonexistent"}, str(short_tmp), out, err) == 0
    spec = yaml.safe_load(out.getvalue())
    assert spec["uwsgi"]["options"] == {"harakiri": 30}  # `project` is a variable, not an option
    assert "could not ask uWSGI for its options (no uwsgi binary here)" in err.getvalue()


@pytest.mark.parametrize(
    "text", ["yes", "no", "030", "1.10", "[blog]", "100%", "a: b", "#x", "", " x", "~", "@a"]
)
def test_scalars_read_back_as_written(text: str) -> None:
    assert yaml.safe_load(f"k: {scalar(text)}")["k"] == text


def test_option_numbers_stay_bare_as_the_spec_passes_them_as_written() -> None:
    assert scalar("030", numbers_as_text=True) == "030"
    assert scalar("yes", numbers_as_text=True) == '"yes"'


def _rewrite() -> None:
    """Rewrite every case's expected files from what the importer does now."""
    for case in CASES:
        tmp = Path(tempfile.mkdtemp(prefix="usup-imp-", dir="/tmp"))
        os.chmod(tmp, 0o711)
        try:
            run = run_case(case, tmp)
            path = str(run.where)
            for name in EXPECTED:
                (CORPUS / case / name).unlink(missing_ok=True)
            if run.code == 0:
                (CORPUS / case / "expected.yaml").write_text(run.spec.replace(path, "{DIR}"))
                (CORPUS / case / "expected.stderr").write_text(run.stderr.replace(path, "{DIR}"))
            else:
                (CORPUS / case / "expected.err").write_text(run.stderr.replace(path, "{DIR}"))
            print(f"{case}: exit {run.code}")
        finally:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    _rewrite()
