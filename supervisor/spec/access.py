"""What the service user may do with the files a spec names, asked as that user.

`run` starts uWSGI as the spec's user (when the supervisor is root). A uWSGI
binary that user cannot execute, or a virtualenv or app dir it cannot read
or enter, made `check` say ok while `run` backed off forever on "Permission
denied". So `check` asks, for each path, whether that user can reach it
(search permission on every directory on the way) and use it.

How it asks: a tiny `sh` run as the user (uid, gid and that user's groups,
as uWSGI will run) answers `test -x`/`test -r` for each path. The kernel then
answers, counting ACLs, read-only and noexec mounts and symlinks; doing the
mode-bit arithmetic here instead would be right only on ACL-less systems, and
would refuse a path an ACL opens to the user. Without root (or with no
user to switch to) the answer is os.access, the kernel's answer for us.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Optional, TypeVar

from supervisor.spec.hostchecks import lookup_group, lookup_user, site_packages
from supervisor.spec.model import AppSpec, UwsgiSpec
from supervisor.spec.sections import Section

K = TypeVar("K")

# A path and what the user needs of it: "x" execute a file, "d" enter and
# list a directory, "r" read, "w" write.
Need = tuple[Path, str]
Ids = tuple[int, int, list[int]]  # uid, gid, supplementary groups

_PROBE = 'for p; do if test "${p%%:*}" "${p#*:}"; then printf 1; else printf 0; fi; done'
_FLAGS = {"x": ("-x",), "d": ("-r", "-x"), "r": ("-r",), "w": ("-w",)}
_WORDS = {"x": "execute", "d": "enter and read", "r": "read", "w": "write"}


def access_problems(
    user: Optional[str], group: Optional[str], wants: Mapping[K, Sequence[Need]]
) -> dict[K, str]:
    """For each key of `wants`, what the service user cannot do with its paths (first only).

    Empty when all is well, or when this process cannot ask as that user
    (not root, and the user is someone else): `run` would not switch to it.
    """
    asker = _service_user(user, group)
    if asker is None:
        return {}
    who, ids = asker
    probes: list[tuple[K, Path, Path, str]] = []  # key, path wanted, path probed, flag
    for key, needs in wants.items():
        for path, need in needs:
            for directory in reversed(path.parents):
                probes.append((key, path, directory, "-x"))
            probes.extend((key, path, path, flag) for flag in _FLAGS[need])
    answers = _ask(ids, [(probed, flag) for _, _, probed, flag in probes])
    if answers is None:
        return {}
    found: dict[K, str] = {}
    for (key, path, probed, _flag), ok in zip(probes, answers):
        if ok or key in found:
            continue
        if probed != path:
            found[key] = (
                f"{who} cannot reach {path}: no search permission on {probed}; "
                f"let {who} through (e.g. chmod o+x {probed}) or move it"
            )
        else:
            need = next(n for p, n in wants[key] if p == path)
            found[key] = (
                f"{who} cannot {_WORDS[need]} {path}; "
                f"fix its owner or mode (uWSGI runs as {who})"
            )
    return found


def _service_user(user: Optional[str], group: Optional[str]) -> Optional[tuple[str, Optional[Ids]]]:
    """Who uWSGI runs as, in words, and the ids to ask as (None: ask as ourselves);
    None when we cannot ask as that user."""
    if not user:
        return "the user running the supervisor", None
    pw = lookup_user(user)
    who = f"user {pw.pw_name}"
    if pw.pw_uid == os.geteuid():
        return who, None
    if os.geteuid() != 0:
        return None
    gid = lookup_group(group).gr_gid if group else pw.pw_gid
    return who, (pw.pw_uid, gid, os.getgrouplist(pw.pw_name, gid))


def _ask(ids: Optional[Ids], probes: Sequence[tuple[Path, str]]) -> Optional[list[bool]]:
    if not probes:
        return []
    if ids is None:
        modes = {"-x": os.X_OK, "-r": os.R_OK, "-w": os.W_OK}
        return [os.access(path, modes[flag]) for path, flag in probes]
    uid, gid, groups = ids
    try:
        done = subprocess.run(
            ["/bin/sh", "-c", _PROBE, "sh", *(f"{flag}:{path}" for path, flag in probes)],
            user=uid,
            group=gid,
            extra_groups=groups,
            env={"PATH": "/usr/bin:/bin"},
            cwd="/",
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.SubprocessError, ValueError):
        return None  # cannot ask: say nothing rather than refuse a good spec
    if len(done.stdout) != len(probes):
        return None
    return [c == "1" for c in done.stdout]


def report_access(
    u: Section,
    uwsgi: UwsgiSpec,
    a: Optional[Section],
    app: AppSpec,
    user: Optional[str],
    group: Optional[str],
) -> None:
    """Report, at its key, a uWSGI binary, virtualenv or app dir the service user
    cannot use (`a`, the app section: None when the app tree is deferred)."""
    wants: dict[tuple[Section, str], list[Need]] = {}
    if u.ok("binary") and uwsgi.binary:
        wants[u, "binary"] = [(Path(uwsgi.binary), "x")]
    if a is not None and a.has("chdir") and a.ok("chdir", "virtualenv", "module"):
        wants[a, "chdir"] = [(app.chdir, "d")]
        if app.virtualenv is not None:
            venv = app.virtualenv
            wants[a, "virtualenv"] = [(venv, "d"), (venv / "bin" / "python", "x")]
            wants[a, "virtualenv"] += [(p, "d") for p in site_packages(venv)]
    for (section, key), problem in access_problems(user, group, wants).items():
        section.problem(key, problem)
