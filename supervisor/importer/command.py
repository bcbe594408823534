"""`uwsgi-supervisor import`: read the hand setup, write the spec, say what changed."""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import tempfile
from collections.abc import Mapping
from typing import Optional, TextIO

from supervisor.exitcodes import Exit
from supervisor.importer.context import Choices
from supervisor.importer.draft import render
from supervisor.importer.expand import expand
from supervisor.importer.ini import read_ini
from supervisor.importer.mapping import map_setup
from supervisor.importer.nginxconf import read_nginx
from supervisor.importer.options import known_options
from supervisor.importer.problems import ImportFailure
from supervisor.spec.load import SpecError, load_spec
from supervisor.spec.values import check_name, is_loopback, listen_scope, parse_address

PROG = "uwsgi-supervisor import"


def cmd_import(args: argparse.Namespace) -> int:
    return run_import(args, os.environ, os.getcwd(), sys.stdout, sys.stderr)


def _usage(args: argparse.Namespace) -> Optional[str]:
    if args.name is not None:
        try:
            check_name(args.name)
        except ValueError as exc:
            return f"--name: {exc}"
    if args.socket is not None:
        try:
            address = parse_address(args.socket)
        except ValueError as exc:
            return f"--socket: {exc}"
        if not is_loopback(address):
            scope = listen_scope(address)
            return f"--socket: {args.socket} listens on {scope}; give a unix path or 127.0.0.1:PORT"
    if args.output and os.path.exists(args.output) and not args.force:
        return f"{args.output} exists; --force overwrites it"
    return None


def run_import(
    args: argparse.Namespace, environ: Mapping[str, str], cwd: str, out: TextIO, err: TextIO
) -> int:
    usage = _usage(args)
    if usage is not None:
        print(f"{PROG}: {usage}", file=err)
        return Exit.CANTCREAT if usage.endswith("overwrites it") else Exit.USAGE
    known, binary = known_options(environ)
    try:
        ini = read_ini(args.ini, cwd, environ)
        notes = ini.notes + expand(ini, environ, cwd)
        nginx = read_nginx(args.nginx) if args.nginx else None
        choices = Choices(name=args.name, socket=args.socket, output=args.output)
        draft = map_setup(ini, nginx, choices, known, cwd)
    except ImportFailure as exc:
        for problem in exc.problems:  # one line each, and nothing written
            print(problem, file=err)
        return Exit.CONFIG
    if known is None:
        draft.warnings.append(f"could not ask uWSGI for its options ({binary}): carried unchecked")
    text = render(draft)
    name = str(draft.settings["name"].value)
    for line in notes:
        print(f"note: {line}", file=err)
    for line in draft.warnings:
        print(f"warning: {line}", file=err)
    for line in draft.dropped:
        print(f"not carried over: {line}", file=err)
    for line in host_problems(text, name, environ):
        print(f"check will say: {line}", file=err)
    if args.output:
        try:
            _write(os.path.join(cwd, args.output), text)
        except OSError as exc:
            print(f"{PROG}: cannot write {args.output}: {exc.strerror or exc}", file=err)
            return Exit.CANTCREAT
        check = f"uwsgi-supervisor check {args.output}"
        print(f"{PROG}: wrote {args.output}; check it with: {check}", file=err)
    else:
        out.write(text)
    return Exit.OK


def host_problems(text: str, name: str, environ: Mapping[str, str]) -> list[str]:
    """What `uwsgi-supervisor check` says of the spec on this host (missing paths, users)."""
    with tempfile.TemporaryDirectory(prefix="usup-import-") as tmp:
        path = os.path.join(tmp, f"{name}.yaml")
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
        try:
            load_spec(path, environ)
        except SpecError as exc:
            return [f"{p.key}: {p.message}" if p.key else p.message for p in exc.problems]
    return []


def _write(path: str, text: str) -> None:
    """Write the spec whole or not at all."""
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".import-")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
