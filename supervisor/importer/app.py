"""The app an ini loads: what to import, from where, with which environment.

uWSGI loads `module` (callable `application` unless `callable` or
`module = pkg:app` says otherwise; `pkg:create_app()` calls a factory),
or a file (`wsgi-file`), or an app at a sub-path (`mount = /bbb=...`).
A spec names a module importable from app.chdir, so a file becomes its
module name there.
"""

from __future__ import annotations

import os
from typing import Optional

from supervisor.importer.context import Context, source
from supervisor.importer.draft import Setting
from supervisor.importer.ini import Entry
from supervisor.spec.values import check_env_name, normalise_mount, parse_app_target

DEFAULT_CALLABLE = "application"  # uWSGI's, when neither module nor callable names one


def map_app(ctx: Context) -> Optional[str]:
    """Set app.* from the ini; returns the ini's own mount (`mount = /bbb=...`), if any."""
    ini_dir = os.path.dirname(os.path.abspath(os.path.join(ctx.cwd, ctx.ini.file)))
    chdir = ctx.last("chdir", "chdir2")
    ctx.base = ini_dir
    if chdir is not None:
        ctx.base = ctx.path(chdir.value)
        relative = [] if os.path.isabs(chdir.value) else [
            "(relative: taken from the ini's directory, as if uWSGI was started there)"
        ]
        ctx.draft.set("app.chdir", ctx.base, source(chdir), *relative)
    module_entry = ctx.last("module", "wsgi")  # uWSGI keeps the last of each
    file_entry = ctx.last("wsgi-file", "file")
    mounts = ctx.take("mount")
    callable_entry = ctx.last("callable")
    callable_ = callable_entry.value if callable_entry else DEFAULT_CALLABLE
    comments = [source(callable_entry)] if callable_entry else []
    loaders = [e for e in (module_entry, file_entry, *mounts) if e is not None]
    if not loaders:
        _no_app(ctx)
        return None
    if len(loaders) > 1:
        lines = ", ".join(f"{e.key} (line {e.where.line})" for e in loaders)
        ctx.fail(loaders[-1], f"this loads several apps ({lines}); a spec runs one: keep one")
        return None
    entry = loaders[0]
    mount: Optional[str] = None
    target = entry.value
    if entry.key == "mount":
        prefix, has, target = entry.value.partition("=")
        try:
            mount = normalise_mount(prefix.strip()) if has else None
        except ValueError as exc:
            ctx.fail(entry, f"the mount point: {exc}")
            return None
        if mount is None:
            ctx.fail(entry, "write mount = /PREFIX=module:app or /PREFIX=file.py")
            return None
    is_file = entry.key in ("wsgi-file", "file") or (
        entry.key == "mount" and ("/" in target or target.endswith((".py", ".wsgi")))
    )
    module = _file_module(ctx, entry, ctx.path(target), chdir is not None) if is_file else target
    if module is None:
        return mount
    if ":" not in module:
        module = f"{module}:{callable_}"
    elif callable_entry is not None:
        comments.append(f"(callable is ignored: {entry.key} names the callable itself)")
    try:
        parse_app_target(module)
    except ValueError as exc:
        ctx.fail(entry, str(exc))
        return mount
    ctx.draft.set("app.module", module, source(entry), *comments)
    if "app.chdir" not in ctx.draft.settings:
        ctx.draft.set(
            "app.chdir",
            ctx.base,
            "the ini sets no chdir: uWSGI ran in the directory it was started from;",
            "this assumes the ini's own directory. Fix it if uWSGI was started elsewhere.",
        )
    _virtualenv(ctx)
    _env(ctx)
    _pythonpath(ctx)
    return mount


def _no_app(ctx: Context) -> None:
    emperor = ctx.take("emperor")
    where = ctx.ini.entries[0] if ctx.ini.entries else None
    if emperor:
        ctx.fail(
            emperor[0],
            "this is an Emperor's config, which starts other uWSGI instances (vassals);"
            " a spec runs one app: import each vassal's ini instead",
        )
    elif where is not None:
        ctx.problems.append(
            f"{ctx.ini.file}:{where.where.line}: [{ctx.ini.section}] names no app: uWSGI"
            " needs module, wsgi-file or mount; add the one this app uses"
        )
    else:
        ctx.problems.append(f"{ctx.ini.file}:1: [{ctx.ini.section}] has no options at all")


def _file_module(ctx: Context, entry: Entry, path: str, chdir_given: bool) -> Optional[str]:
    """The module name of a wsgi-file, importable from app.chdir (moved there if need be)."""
    directory, name = os.path.split(path)
    stem, ext = os.path.splitext(name)
    if ext != ".py" or not stem.isidentifier():
        like = "".join(c if c.isalnum() else "_" for c in stem) + "_wsgi.py"
        ctx.fail(
            entry,
            f"the spec imports a module, and {name} cannot be imported as one; copy it"
            f" to a file named like a Python module ({like}) beside it, and import again",
        )
        return None
    rel = os.path.relpath(path, ctx.base)
    parts = rel[:-3].split(os.sep)
    if chdir_given and not rel.startswith("..") and all(p.isidentifier() for p in parts):
        return ".".join(parts)
    if chdir_given:
        ctx.draft.warnings.append(
            f"{entry.where}: {path} is not importable from chdir {ctx.base}; app.chdir is"
            f" {directory} instead, so the app's working directory changes"
        )
    was = [f"(the ini's chdir was {ctx.base}: the app now runs here)"] if chdir_given else []
    ctx.base = directory
    ctx.draft.set(
        "app.chdir",
        directory,
        f"the directory of the wsgi-file ({source(entry)}): the spec imports it as a module",
        *was,
    )
    return stem


def _virtualenv(ctx: Context) -> None:
    entry = ctx.last("home", "virtualenv", "venv", "pyhome")
    if entry is not None:
        ctx.draft.set("app.virtualenv", ctx.path(entry.value), source(entry))


def _env(ctx: Context) -> None:
    for entry in ctx.take("env"):
        name, has, value = entry.value.partition("=")
        if not has:
            ctx.drop(
                entry,
                f"without '=VALUE' uWSGI removes {name} from the environment; the spec"
                " cannot: remove it from the supervisor's environment",
            )
            continue
        try:
            check_env_name(name)
        except ValueError as exc:
            ctx.drop(entry, str(exc))
            continue
        if name in ctx.draft.env:
            ctx.draft.env[name].comments.append(f"(set again, {source(entry)}: the last wins)")
            ctx.draft.env[name].value = value
            continue
        ctx.draft.env[name] = Setting(value, [source(entry)])


def _pythonpath(ctx: Context) -> None:
    chdir = ctx.draft.settings["app.chdir"].value
    for entry in ctx.take("pythonpath", "python-path", "pp"):
        path = ctx.path(entry.value)
        if path == chdir or path == ".":
            ctx.own(entry, "the supervisor puts app.chdir on the Python path itself")
            continue
        ctx.drop(
            entry,
            f"a spec imports from app.chdir and app.virtualenv only; to import from {path}"
            " too, install it into the virtualenv (pip install -e, or a .pth file naming it)",
        )
