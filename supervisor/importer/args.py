"""The `import` command's arguments: cheap to build, so that every other
command (`run` above all) does not load the importer to parse its own."""

from __future__ import annotations

import argparse


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    i = sub.add_parser(
        "import",
        help="write a spec from a uWSGI ini file (and the nginx config that serves it)",
        description="Read a uWSGI ini file (FILE or FILE:SECTION, as uwsgi --ini takes it)"
        " and write a commented spec: each setting says where it came from, and what"
        " was not carried over is listed, in the spec and on stderr. With --nginx,"
        " the location that passes to the ini's socket gives the mount (/ or /bbb).",
    )
    i.add_argument("ini", help="the ini file; FILE:SECTION for another section than [uwsgi]")
    i.add_argument("--nginx", metavar="CONF", help="the nginx config that passes to the app")
    i.add_argument("-o", "--output", metavar="SPEC", help="write the spec here (default: stdout)")
    i.add_argument("--force", action="store_true", help="overwrite --output if it exists")
    i.add_argument("--name", help="the app's name (default: the output's, else the app's)")
    i.add_argument(
        "--socket",
        metavar="ADDRESS",
        help="the spec's uwsgi.socket instead of the ini's: a unix path or a loopback"
        " host:port (default: the ini's, if only this host can reach it)",
    )
    i.set_defaults(func=_cmd_import)


def _cmd_import(args: argparse.Namespace) -> int:
    from supervisor.importer.command import cmd_import

    return cmd_import(args)
