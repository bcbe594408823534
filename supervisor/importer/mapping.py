"""From an ini (and nginx's config) to the draft of a spec: the whole mapping."""

from __future__ import annotations

import os
import re
from typing import Optional

from supervisor.importer.addresses import map_http, map_socket, map_socket_access
from supervisor.importer.app import map_app
from supervisor.importer.carry import map_rest
from supervisor.importer.context import Choices, Context
from supervisor.importer.draft import Draft, Setting
from supervisor.importer.ini import Ini
from supervisor.importer.locations import NginxFindings, NothingPasses, analyze
from supervisor.importer.nginxconf import NginxConf
from supervisor.importer.problems import ImportFailure
from supervisor.spec.values import check_name

# Module and file names that say nothing about the app: not a good name.
_GENERIC = {"app", "application", "wsgi", "main", "run", "server", "uwsgi", "config", "current"}


def map_setup(
    ini: Ini,
    nginx: Optional[NginxConf],
    choices: Choices,
    known: Optional[frozenset[str]],
    cwd: str,
) -> Draft:
    """The draft spec for `ini`; ImportFailure lists what stops it."""
    ctx = Context(ini=ini, choices=choices, known=known, cwd=cwd)
    ini_mount = map_app(ctx)
    if ctx.problems:
        raise ImportFailure(ctx.problems)
    name = choose_name(ctx)
    ctx.draft.set(
        "name", name,
        f"the systemd instance uwsgi-supervisor@{name}: install this spec as",
        f"/etc/uwsgi-supervisor/{name}.yaml",
    )  # fmt: skip
    socket = map_socket(ctx, name)
    http = map_http(ctx)
    findings: Optional[NginxFindings] = None
    if nginx is not None:
        try:
            findings = analyze(nginx, socket, http)
        except NothingPasses as exc:
            raise ImportFailure([str(exc)]) from None
    map_socket_access(ctx, findings.group if findings else None)
    _mount(ctx, ini_mount, findings)
    map_rest(ctx)
    ctx.settle()
    if ctx.problems:
        raise ImportFailure(ctx.problems)
    ctx.draft.header = _header(ini, nginx, known)
    return ctx.draft


def choose_name(ctx: Context) -> str:
    """--name, else the output file's name, else the app's (its module or directory)."""
    if ctx.choices.name:
        return ctx.choices.name
    if ctx.choices.output:
        stem = os.path.splitext(os.path.basename(ctx.choices.output))[0]
        try:
            return check_name(stem)
        except ValueError:
            pass  # the spec says name: explicitly, so any file name will do
    module = str(ctx.draft.settings["app.module"].value).split(":")[0]
    chdir = str(ctx.draft.settings["app.chdir"].value)
    ini_stem = os.path.splitext(os.path.basename(ctx.ini.file))[0]
    for candidate in (module.split(".")[0], os.path.basename(chdir), ini_stem):
        cleaned = re.sub(r"[^A-Za-z0-9_.-]+", "-", candidate).strip("-.")
        if cleaned and cleaned.lower() not in _GENERIC:
            return cleaned
    return "app"


def _mount(ctx: Context, ini_mount: Optional[str], findings: Optional[NginxFindings]) -> None:
    draft = ctx.draft
    if findings is not None:
        if ini_mount is not None and ini_mount != findings.mount:
            draft.warnings.append(
                f"the ini mounts the app at {ini_mount} but nginx passes {findings.mount};"
                f" the spec follows nginx ({findings.mount})"
            )
        moved = []
        if findings.mount != "/" and ini_mount is None:
            moved = [
                f"uWSGI now sets SCRIPT_NAME={findings.mount} and PATH_INFO to the rest (the old"
                f" setup passed {findings.mount}/... whole in PATH_INFO): url_for() builds"
                f" {findings.mount}/ links; routes written with {findings.mount} in them lose it."
            ]
        draft.set(
            "uwsgi.mount", findings.mount, *findings.mount_comments, *moved,
            "`uwsgi-supervisor render nginx SPEC` prints the locations to use instead.",
        )  # fmt: skip
        for prefix, directory, comment in findings.static:
            draft.static[prefix] = _static_setting(directory, comment)
        draft.dropped += findings.dropped
        draft.warnings += findings.warnings
    elif ini_mount is not None:
        draft.set("uwsgi.mount", ini_mount, "from the ini's mount (with manage-script-name)")


def _static_setting(directory: str, comment: str) -> Setting:
    return Setting(directory, [comment, "served by nginx straight from the directory"])


def _header(ini: Ini, nginx: Optional[NginxConf], known: Optional[frozenset[str]]) -> list[str]:
    source = f"{ini.file} [{ini.section}]"
    lines = [
        f"uwsgi-supervisor spec imported from {source}"
        + (f" and {nginx.file}" if nginx is not None else "")
        + " by `uwsgi-supervisor import`.",
        "Each setting says where it came from; what the supervisor now does itself,",
        "and what was not carried over, is listed at the end. etc/example.yaml",
        "documents every key. Check it on the host that runs the app:",
        "    uwsgi-supervisor check SPEC",
    ]
    if ini.other_sections:
        others = ", ".join(f"[{s}]" for s in ini.other_sections)
        lines.append(f"Other sections of {ini.file}, not imported: {others}.")
    variables = ini.referenced - (known or frozenset())
    if variables:
        names = ", ".join(sorted(variables))
        lines.append(f"Variables of the ini, expanded where used: {names}.")
    return lines
