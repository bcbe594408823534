"""Deferred tree checks: `load_spec(tree=False)` and `tree_problems`.

A missing app.chdir, virtualenv, module file or watch path at run time is a
deploy in progress; `check` (tree=True) still reports it as a spec error.
"""

from __future__ import annotations

import re
import shutil
from dataclasses import replace
from pathlib import Path

import pytest

from supervisor.spec import SpecError, load_spec, tree_problems

ENV = {"RUNTIME_DIRECTORY": "/run/uwsgi-supervisor/blog", "PATH": "/usr/bin:/bin"}


def build_tree(root: Path) -> None:
    (root / "app" / "templates").mkdir(parents=True)
    (root / "app" / "blog.py").write_text("app = object()\n")
    (root / "venv" / "bin").mkdir(parents=True)
    (root / "venv" / "bin" / "python").write_text("")
    (root / "venv" / "bin" / "python").chmod(0o755)


def spec_file(tmp_path: Path, root: Path) -> Path:
    path = tmp_path / "blog.yaml"
    path.write_text(
        f"app:\n"
        f"  module: 'blog:app'\n"
        f"  chdir: {root}/app\n"
        f"  virtualenv: {root}/venv\n"
        f"watch:\n"
        f"  paths: [{root}/app/templates]\n"
        f"uwsgi:\n"
        f"  binary: /bin/true\n"
    )
    return path


def test_missing_chdir_is_deferred_then_complete(tmp_path: Path) -> None:
    root = tmp_path / "srv"
    path = spec_file(tmp_path, root)

    spec = load_spec(path, ENV, tree=False)

    assert spec.app.chdir == root / "app"
    problems = tree_problems(spec)
    assert problems == [
        f"app.chdir: {root}/app does not exist; create it or fix the path",
        f"app.virtualenv: {root}/venv does not exist; create it or fix the path",
        f"watch.paths[0]: {root}/app/templates does not exist; create it or fix the path",
    ]
    with pytest.raises(SpecError) as caught:
        load_spec(path, ENV)  # check: tree=True is the default
    lines = str(caught.value).splitlines()
    assert re.match(rf"{re.escape(str(path))}:3:10: app.chdir: .* does not exist", lines[0])

    build_tree(root)

    assert tree_problems(spec) == []
    assert load_spec(path, ENV) == load_spec(path, ENV, tree=False)


def test_module_file_and_venv_python_missing(tmp_path: Path) -> None:
    root = tmp_path / "srv"
    build_tree(root)
    (root / "app" / "blog.py").unlink()
    (root / "venv" / "bin" / "python").unlink()
    spec = load_spec(spec_file(tmp_path, root), ENV, tree=False)

    assert [p.split(":")[0] for p in tree_problems(spec)] == ["app.virtualenv"]
    assert "has no bin/python" in tree_problems(spec)[0]

    (root / "venv" / "bin" / "python").write_text("")
    (root / "venv" / "bin" / "python").chmod(0o755)
    (problem,) = tree_problems(spec)
    assert problem.startswith("app.module: module 'blog' not found: looked for ")


def test_tree_false_still_checks_the_rest(tmp_path: Path) -> None:
    path = tmp_path / "blog.yaml"
    path.write_text(
        "app:\n  module: 'blog:app'\n  chdir: srv/app\nuwsgi:\n  binary: /bin/true\n"
        "  processes: 0\n"
    )
    with pytest.raises(SpecError) as caught:
        load_spec(path, ENV, tree=False)
    assert [p.key for p in caught.value.problems] == ["app.chdir", "uwsgi.processes"]
    assert "not an absolute path" in caught.value.problems[0].message


def test_tree_problems_never_raise(tmp_path: Path) -> None:
    root = tmp_path / "srv"
    build_tree(root)
    spec = load_spec(spec_file(tmp_path, root), ENV, tree=False)
    long_name = tmp_path / ("x" * 300)
    blocked = tmp_path / "file"
    blocked.write_text("")
    app = replace(spec.app, chdir=long_name, virtualenv=blocked / "venv")
    weird = replace(spec, app=app)

    problems = tree_problems(weird)

    assert problems[0].startswith(f"app.chdir: {str(long_name)[:60]}... (")
    assert "is too long for the kernel" in problems[0]
    assert problems[1].startswith("app.virtualenv: ")
    shutil.rmtree(root)
    assert len(tree_problems(spec)) == 3
