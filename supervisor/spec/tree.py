"""What of the app tree is missing right now: a deploy in progress, not a config error.

`load_spec(path, tree=False)` accepts a spec whose app.chdir, app.virtualenv,
module file or watch.paths are missing, so that `run` (and SIGHUP) can keep
serving while `rm -rf app && git clone ...` runs. `tree_problems` says, in
the words `check` would use, what is still missing; the loop waits for it
to be empty before it loads the new tree.
"""

from __future__ import annotations

from typing import Callable

from supervisor.spec.hostchecks import (
    existing_dir,
    existing_path,
    host_problem,
    module_problem,
    virtualenv_dir,
)
from supervisor.spec.model import Spec


def tree_problems(spec: Spec) -> list[str]:
    """What of the spec's app tree is missing or unusable now, as sentences; [] when complete.

    Never raises: an error from the filesystem (permission denied, a name too
    long) is one more sentence.
    """
    problems: list[str] = []

    def check(key: str, probe: Callable[[], object]) -> bool:
        try:
            probe()
        except Exception as exc:  # noqa: BLE001 - whatever the host says becomes a sentence
            problems.append(f"{key}: {host_problem(exc)}")
            return False
        return True

    app = spec.app
    chdir_ok = check("app.chdir", lambda: existing_dir(str(app.chdir)))
    venv = app.virtualenv
    venv_ok = venv is None or check("app.virtualenv", lambda: virtualenv_dir(str(venv)))
    if chdir_ok and venv_ok:
        check("app.module", lambda: _module_file(spec))
    for index, path in enumerate(spec.watch.paths):
        check(f"watch.paths[{index}]", lambda p=path: existing_path(str(p)))  # type: ignore[misc]
    return problems


def _module_file(spec: Spec) -> None:
    problem = module_problem(spec.app.module, spec.app.chdir, spec.app.virtualenv)
    if problem is not None:
        raise ValueError(problem)
