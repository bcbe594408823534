"""Checks of a spec against this host: paths, users, groups, modules, binaries.

Each check raises ValueError with a message that says what to fix. Paths
are kept as written (never resolved): a deploy's `current` symlink must stay
a symlink to the runtime.
"""

from __future__ import annotations

import errno
import grp
import os
import pwd
import shutil
import stat
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Callable, Optional, TypeVar

T = TypeVar("T")


def host_problem(exc: BaseException) -> str:
    """What went wrong looking at this host, as the end of a problem line.

    A check's own ValueError already says it; the host's errors (OSError of
    any kind, OverflowError from pwd/grp, a name that does not encode) are
    put in a user's words, so no check ever ends in a traceback.
    """
    if isinstance(exc, OSError):
        where = _shown(exc.filename) if exc.filename is not None else "the path"
        if exc.errno == errno.ENAMETOOLONG:
            return (
                f"{where} is too long for the kernel (at most {NAME_MAX} bytes a name and "
                f"{PATH_MAX - 1} bytes a path); use a shorter path"
            )
        if exc.errno in (errno.EACCES, errno.EPERM):
            return (
                f"cannot look at {where}: permission denied (a directory on the way is not "
                "searchable by the user running this check); fix the permissions or the path"
            )
        return f"cannot look at {where}: {exc.strerror or exc}"
    if isinstance(exc, UnicodeError):
        return "cannot be used as a file name on this host (it does not encode); fix the text"
    if isinstance(exc, ValueError):
        return str(exc)
    return f"cannot be checked on this host: {exc}"


# Linux's limits on a file name and a path (with its NUL).
NAME_MAX = 255
PATH_MAX = 4096


def _shown(filename: object) -> str:
    """A path for a message: a path of kilobytes is cut to its start and its size."""
    text = os.fsdecode(filename) if isinstance(filename, (str, bytes)) else str(filename)
    if len(text) <= 120:
        return text
    return f"{text[:60]}... ({len(os.fsencode(text))} bytes)"


def host_check(check: Callable[[str], T]) -> Callable[[str], T]:
    """`check`, with every error of the host turned into a ValueError that says it.

    The loader reports ValueErrors at the key's line; anything else the OS or
    pwd/grp raise (PermissionError, a name too long, OverflowError for a huge
    id) would otherwise end `check` and `run` in a traceback.
    """

    def checked(text: str) -> T:
        try:
            return check(text)
        except UnicodeError as exc:  # a ValueError, but not one of ours
            raise ValueError(host_problem(exc)) from None
        except ValueError:
            raise
        except (OSError, OverflowError) as exc:
            raise ValueError(host_problem(exc)) from None

    checked.__name__ = check.__name__
    checked.__doc__ = check.__doc__
    return checked


def absolute_path(text: str) -> Path:
    if not os.path.isabs(text):
        hint = " ('~' is not expanded)" if text.startswith("~") else ""
        raise ValueError(f"'{text}' is not an absolute path; write it from '/'{hint}")
    return Path(text)


def _missing(path: Path) -> str:
    if path.is_symlink():
        return f"{path} is a symlink to {os.readlink(path)}, which does not exist"
    return f"{path} does not exist"


@host_check
def existing_dir(text: str) -> Path:
    """An absolute path to a directory (or a symlink to one) that exists."""
    path = absolute_path(text)
    if not path.exists():
        raise ValueError(f"{_missing(path)}; create it or fix the path")
    if not path.is_dir():
        raise ValueError(f"{path} is a file, not a directory")
    return path


@host_check
def existing_path(text: str) -> Path:
    """An absolute path to anything that exists."""
    path = absolute_path(text)
    if not path.exists():
        raise ValueError(f"{_missing(path)}; create it or fix the path")
    return path


@host_check
def file_in_existing_dir(text: str) -> Path:
    """An absolute path to a file that may not exist yet, in a directory that does."""
    path = absolute_path(text)
    if path.is_dir():
        raise ValueError(f"{path} is a directory; give a file name in it")
    if not path.parent.is_dir():
        raise ValueError(f"directory {path.parent} does not exist; create it or fix the path")
    return path


@host_check
def virtualenv_dir(text: str) -> Path:
    """A virtualenv: a directory with bin/python."""
    path = existing_dir(text)
    if not (path / "bin" / "python").exists():
        raise ValueError(
            f"{path} has no bin/python, so it is not a virtualenv; "
            f"create one with: python3 -m venv {path}"
        )
    return path


def site_packages(virtualenv: Path) -> list[Path]:
    return sorted(virtualenv.glob("lib*/python3*/site-packages"))


def find_module(module: str, roots: Sequence[Path]) -> Optional[Path]:
    """Where `module` (dotted) would be imported from under one of `roots`."""
    *packages, last = module.split(".")
    for root in roots:
        folder = root.joinpath(*packages)
        candidates = [folder / f"{last}.py", folder / last / "__init__.py", folder / f"{last}.pyc"]
        candidates += sorted(folder.glob(f"{last}.*so")) if folder.is_dir() else []
        for candidate in candidates:
            if candidate.is_file():
                return candidate
    return None


def module_not_found(module: str, chdir: Path, virtualenv: Optional[Path]) -> str:
    """Why `module` cannot be imported by the app, and where it was looked for."""
    rel = module.replace(".", "/")
    where = f"{chdir}/{rel}.py or {chdir}/{rel}/__init__.py"
    if virtualenv is not None:
        return (
            f"module '{module}' not found: looked for {where}, and in the site-packages "
            f"of {virtualenv}; fix app.module or app.chdir"
        )
    return (
        f"module '{module}' not found: looked for {where}; fix app.module or app.chdir "
        "(if the app is installed in a virtualenv, set app.virtualenv)"
    )


def module_problem(module: str, chdir: Path, virtualenv: Optional[Path]) -> Optional[str]:
    """Why the app's `module` cannot be imported from chdir or the virtualenv; None if it can."""
    try:
        roots = [chdir] + (site_packages(virtualenv) if virtualenv else [])
        if find_module(module, roots) is None:
            return module_not_found(module, chdir, virtualenv)
    except (OSError, OverflowError, ValueError) as exc:
        return f"module '{_shown(module)}' cannot be looked for: {host_problem(exc)}"
    return None


def lookup_user(name: str) -> pwd.struct_passwd:
    """A user as a spec names it: by name or by numeric uid. Raises KeyError."""
    return pwd.getpwuid(int(name)) if _numeric(name) else pwd.getpwnam(name)


def lookup_group(name: str) -> grp.struct_group:
    """A group as a spec names it: by name or by numeric gid. Raises KeyError."""
    return grp.getgrgid(int(name)) if _numeric(name) else grp.getgrnam(name)


def _numeric(name: str) -> bool:
    """A uid or gid written as a number; past the kernel's ids it raises OverflowError
    (before int() could refuse thousands of digits)."""
    if not (name.isascii() and name.isdigit()):
        return False
    if len(name) > len(str(MAX_ID)) or int(name) > MAX_ID:
        raise OverflowError(f"{name} is past the largest id")
    return True


# The largest id the kernel has: uid_t and gid_t are 32 bits, and -1 means "none".
MAX_ID = 2**32 - 2


def _id_too_large(kind: str, name: str) -> str:
    return f"{kind} {_shown(name)} is past the largest the kernel has ({MAX_ID}); fix the number"


@host_check
def existing_user(name: str) -> str:
    try:
        lookup_user(name)
    except OverflowError:
        raise ValueError(_id_too_large("uid", name)) from None
    except KeyError:
        raise ValueError(
            f"no user '{name}' on this host; create it (useradd --system {name}) or fix the name"
        ) from None
    return name


@host_check
def existing_group(name: str) -> str:
    try:
        lookup_group(name)
    except OverflowError:
        raise ValueError(_id_too_large("gid", name)) from None
    except KeyError:
        raise ValueError(
            f"no group '{name}' on this host; create it (groupadd --system {name}) or fix the name"
        ) from None
    return name


def _is_executable(path: str) -> bool:
    return os.path.isfile(path) and os.access(path, os.X_OK)


def uwsgi_binary(binary: Optional[str], search_path: Optional[str]) -> str:
    """The absolute path of the uWSGI binary to run.

    With no `binary`, the `uwsgi` installed beside this Python (pip's uWSGI
    in the same virtualenv) wins over the one on PATH.
    """
    if binary is None:
        beside = os.path.join(os.path.dirname(sys.executable), "uwsgi")
        if _is_executable(beside):
            return beside
        found = shutil.which("uwsgi", path=search_path)
        if found:
            return os.path.abspath(found)
        raise ValueError(
            f"no uwsgi binary beside {sys.executable} or on PATH; "
            "install uWSGI (pip install uwsgi) or set uwsgi.binary"
        )
    if "/" in binary:
        path = absolute_path(binary)
        if not path.exists():
            raise ValueError(f"{_missing(path)}; install uWSGI or fix the path")
        if not _is_executable(binary):
            raise ValueError(f"{binary} is not an executable file")
        return binary
    found = shutil.which(binary, path=search_path)
    if not found:
        raise ValueError(f"'{binary}' is not found on PATH; give its absolute path")
    return os.path.abspath(found)


@host_check
def runtime_dir_path(text: str) -> Path:
    """A runtime dir: a directory, or one that can be created (its first existing
    ancestor is a directory). Who owns it is checked when `run` prepares it."""
    path = absolute_path(text)
    check_runtime_dir(path)
    return path


def check_runtime_dir(path: Path) -> None:
    """Refuse a runtime dir that is a file (or a FIFO, a socket...), or sits under one."""
    for place in (path, *path.parents):
        try:
            mode = os.stat(place).st_mode
        except (FileNotFoundError, NotADirectoryError):  # look further up
            continue
        if stat.S_ISDIR(mode):
            return
        what = "a regular file" if stat.S_ISREG(mode) else "not a directory"
        if place == path:
            raise ValueError(f"{path} is {what}; give a directory (or one to create)")
        raise ValueError(f"{path} cannot be created: {place} is {what}")


def _systemd_dir(
    name: str, environ: Mapping[str, str], systemd: str, root: str, xdg: str, fallback: Path
) -> Path:
    """systemd's `systemd` directory variable, else `root`/NAME for root, else
    the user's `xdg` dir, else `fallback`, with uwsgi-supervisor/NAME under it."""
    first = environ.get(systemd, "").split(":")[0]
    if os.path.isabs(first):
        return Path(first)
    if os.geteuid() == 0:
        return Path(root) / name
    base = environ.get(xdg, "")
    if os.path.isabs(base):
        return Path(base) / "uwsgi-supervisor" / name
    return fallback / name


def default_state_dir(name: str, environ: Mapping[str, str]) -> Path:
    """systemd's STATE_DIRECTORY, else /var/lib/... for root, else a per-user dir."""
    home_state = Path(os.path.expanduser("~")) / ".local" / "state" / "uwsgi-supervisor"
    return _systemd_dir(
        name, environ, "STATE_DIRECTORY", "/var/lib/uwsgi-supervisor", "XDG_STATE_HOME",
        home_state,
    )  # fmt: skip


def default_runtime_dir(name: str, environ: Mapping[str, str]) -> Path:
    """systemd's RUNTIME_DIRECTORY, else /run/... for root, else a per-user dir."""
    return _systemd_dir(
        name, environ, "RUNTIME_DIRECTORY", "/run/uwsgi-supervisor", "XDG_RUNTIME_DIR",
        Path(f"/tmp/uwsgi-supervisor-{os.geteuid()}"),
    )  # fmt: skip
