"""Command line: check, run, status, reload, render, events, import."""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Optional

from supervisor import __version__, eventscli
from supervisor.exitcodes import Exit
from supervisor.lifecycle.samples import Stats
from supervisor.lifecycle.states import TROUBLE_STATES, State
from supervisor.spec.load import SpecError, load_spec
from supervisor.spec.model import Spec, runtime_paths
from supervisor.status import StateDoc, ago, read_state
from supervisor.uwsgi.command import (
    SHOWN_FDS,
    build_command,
    chain_refusal,
    chain_reload_loads_new_code,
)
from supervisor.uwsgi.fifo import FifoNotReady, write_fifo_retry
from supervisor.uwsgi.silence import look
from supervisor.uwsgi.stats import parse_stats, read_stats_raw


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return Exit.USAGE
    try:
        code: int = args.func(args)
        return code
    except SpecError as exc:
        print(str(exc), file=sys.stderr)
        return Exit.CONFIG
    except KeyboardInterrupt:
        return Exit.INTERRUPTED


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="uwsgi-supervisor",
        description="Run one Python web app under uWSGI: validated spec, crash restart,"
        " code-push reload, systemd notify and watchdog.",
    )
    p.add_argument("--version", action="version", version=f"uwsgi-supervisor {__version__}")
    sub = p.add_subparsers(metavar="COMMAND")

    c = sub.add_parser("check", help="validate a spec and print the uWSGI command it runs")
    c.add_argument("spec", type=Path)
    c.add_argument(
        "-q", "--quiet", action="store_true", help="print nothing when the spec is valid"
    )
    c.set_defaults(func=cmd_check)

    r = sub.add_parser("run", help="supervise the app in the foreground (what systemd runs)")
    r.add_argument("spec", type=Path)
    r.set_defaults(func=cmd_run)

    s = sub.add_parser(
        "status",
        help="show the supervisor's and uWSGI's state",
        description="Exit status (LSB): 0 uWSGI answers; 3 not running; 4 uWSGI's"
        " processes live but its master does not answer (stopped or hung; workers may"
        " still serve).",
    )
    s.add_argument("spec", type=Path)
    s.add_argument("--json", action="store_true", help="machine-readable output")
    s.set_defaults(func=cmd_status)

    rl = sub.add_parser(
        "reload",
        help="reload the app's code (through the supervisor if it runs, else the master FIFO)",
    )
    rl.add_argument("spec", type=Path)
    rl.add_argument("--chain", action="store_true", help="chain reload: one worker at a time")
    rl.add_argument(
        "--wait",
        action="store_true",
        default=True,
        help="wait until the reload is done or failed (default)",
    )
    rl.add_argument("--no-wait", dest="wait", action="store_false")
    rl.add_argument(
        "--timeout",
        type=float,
        default=None,
        help="seconds to wait (default: spec's reload.timeout + 30)",
    )
    rl.set_defaults(func=cmd_reload)

    rd = sub.add_parser(
        "render",
        help="print the nginx include, or the systemd drop-in for the service or its socket unit",
    )
    rd.add_argument("what", choices=["nginx", "unit", "socket"])
    rd.add_argument("spec", type=Path)
    rd.set_defaults(func=cmd_render)
    eventscli.add_parser(sub)

    from supervisor.importer import add_parser as add_import

    add_import(sub)
    return p


def cmd_check(args: argparse.Namespace) -> int:
    spec = load_spec(args.spec)
    if not args.quiet:
        cmd = build_command(spec, runtime_paths(spec).instance("1"), SHOWN_FDS)
        print(f"{args.spec}: ok ({spec.name}: {spec.app.target} in {spec.app.chdir})")
        u = spec.uwsgi
        print(f"app socket: {u.socket.for_uwsgi()} (backlog {u.listen}), uWSGI's fd://{SHOWN_FDS.app}")
        if u.http is not None:
            print(f"http socket: {u.http.for_uwsgi()}, uWSGI's fd://{SHOWN_FDS.http}")
        print(cmd.shell_line())
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from supervisor.logs import Logger
    from supervisor.loop import run

    # The one load: the loop takes this Spec. A missing app tree is a deploy
    # in progress, not a config error (`check` reports it): serve, then wait.
    spec = load_spec(args.spec, tree=False)
    log = Logger(spec.name)
    # watchdog logs a harmless race at ERROR when a watch is moved (every
    # release flip); our watcher reports what matters itself.
    logging.getLogger("watchdog").setLevel(logging.CRITICAL)
    return run(spec, log)


def supervisor_pid(spec: Spec) -> Optional[int]:
    """PID of the live supervisor holding this app's lock, if any."""
    import fcntl

    lock = runtime_paths(spec).lock
    try:
        with open(lock) as f:
            try:
                fcntl.flock(f, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except OSError:
                text = f.read().strip()
                return int(text) if text.isdigit() else None
            fcntl.flock(f, fcntl.LOCK_UN)
            return None
    except OSError:
        return None


def cmd_status(args: argparse.Namespace) -> int:
    spec = load_spec(args.spec, tree=False)  # also during a deploy
    paths = runtime_paths(spec)
    pid = supervisor_pid(spec)
    state = read_state(paths.state) if pid else None
    raw = read_stats_raw(paths.stats)
    # No answer: a master that is stopped or hung still has workers serving.
    silent = look(spec.runtime_dir, state["uwsgi_pid"] if state else None) if raw is None else None
    code = Exit.OK if raw is not None else Exit.STATUS_UNKNOWN if silent else Exit.NOT_RUNNING
    if args.json:
        doc: dict[str, Any] = {"supervisor": state, "supervisor_running": pid is not None}
        doc["uwsgi"] = raw
        doc["uwsgi_not_answering"] = silent.as_json() if silent else None
        print(json.dumps(doc, indent=2, sort_keys=True))
        return code
    if state is not None:
        print(f"supervisor: pid {pid}, {state['state']}: {state['status']}")
        if state["reload_refused"]:
            print(f"  {state['reload_refused']}")
        reload = state["last_reload"]
        if reload:
            print(f"  last reload {ago(time.time() - reload['at'])}: {reload['reason']}")
        for sock in state.get("sockets", []):
            queued = "?" if sock["queued"] is None else sock["queued"]
            print(
                f"  {sock['role']} socket {sock['address']}: held by {sock['held_by']},"
                f" {queued} queued of {sock['backlog']}"
            )
        if State(state["state"]) in TROUBLE_STATES and state["uwsgi_tail"]:
            print("  uWSGI's last lines:")
            for line in state["uwsgi_tail"]:
                print(f"    {line}")
    else:
        print(f"supervisor: not running for {spec.name} ({paths.root})")
    if silent is not None:
        print(f"uWSGI: {silent.describe(paths.stats)}")
        return code
    if raw is None:
        print(f"uWSGI: not running (no answer on {paths.stats})")
        return code
    print_stats(parse_stats(raw), state)
    return Exit.OK


def print_stats(stats: Stats, state: Optional[StateDoc]) -> None:
    gen = f", generation {state['generation']}" if state else ""
    print(
        f"uWSGI {stats.version}: master pid {stats.pid}, {stats.serving_workers}/"
        f"{len(stats.workers)} workers serving, listen queue {stats.listen_queue}{gen}"
    )
    print(
        f"{'worker':>6} {'pid':>8} {'state':<9} {'requests':>9} {'exceptions':>10}"
        f" {'rss MiB':>8}  spawned"
    )
    now = time.time()
    for w in stats.workers:
        status = w.status if w.accepting else f"{w.status}*"
        spawned = ago(max(0.0, now - w.last_spawn)) if w.last_spawn else "-"
        print(
            f"{w.id:>6} {w.pid:>8} {status:<9} {w.requests:>9} {w.exceptions:>10}"
            f" {w.rss / 1048576:>8.1f}  {spawned}"
        )


def cmd_reload(args: argparse.Namespace) -> int:
    spec = load_spec(args.spec, tree=False)  # also during a deploy
    paths = runtime_paths(spec)
    pid = supervisor_pid(spec)
    if args.chain and not chain_reload_loads_new_code(spec):
        print(f"uwsgi-supervisor: {chain_refusal(spec)}", file=sys.stderr)
        return Exit.CONFIG
    if pid is None:
        command = "c" if args.chain else "r"
        try:
            write_fifo_retry(paths.master_fifo, command)
        except (FifoNotReady, OSError) as exc:
            print(f"uwsgi-supervisor: cannot reload {spec.name}: {exc}", file=sys.stderr)
            return Exit.UNAVAILABLE
        print(f"wrote '{command}' to {paths.master_fifo}")
        return 0
    before_doc = read_state(paths.state)
    before = before_doc["reload_done"]["seq"] if before_doc else 0
    os.kill(pid, signal.SIGUSR2 if args.chain else signal.SIGHUP)
    if not args.wait:
        return 0
    timeout = args.timeout if args.timeout is not None else spec.reload_timeout + 30
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        doc = read_state(paths.state)
        done = doc["reload_done"] if doc else None
        if done is not None and done["seq"] > before:
            print(done["message"], file=sys.stdout if done["ok"] else sys.stderr)
            return Exit.OK if done["ok"] else 1
        time.sleep(0.1)
    print(
        f"uwsgi-supervisor: reload of {spec.name} not finished after {timeout:g}s", file=sys.stderr
    )
    return Exit.TEMPFAIL


def cmd_render(args: argparse.Namespace) -> int:
    from supervisor.render import render_nginx
    from supervisor.systemd.socketunit import render_socket_dropin
    from supervisor.systemd.unit import render_unit_dropin

    spec = load_spec(args.spec, tree=False)  # also during a deploy
    renderers = {"nginx": render_nginx, "unit": render_unit_dropin, "socket": render_socket_dropin}
    try:
        text = renderers[args.what](spec)
    except ValueError as exc:
        print(f"{args.spec}: cannot render the {args.what} file: {exc}", file=sys.stderr)
        return Exit.CONFIG
    sys.stdout.write(text)
    return 0
