"""`uwsgi-supervisor events SPEC`: what happened to the app, newest last.

Reads the event history (see history.py) even when the supervisor is down:
after a bad night, it is where to look first.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any, Optional

import yaml

from supervisor.exitcodes import Exit
from supervisor.history import describe, events_path, read_events
from supervisor.spec.hostchecks import default_state_dir
from supervisor.spec.load import SpecError, load_spec

FOLLOW_POLL = 0.5
_SPAN = re.compile(r"(\d+(?:\.\d+)?)\s*(s|m|min|h|d)")
_UNIT = {"s": 1, "m": 60, "min": 60, "h": 3600, "d": 86400}


def add_parser(sub: Any) -> None:
    e = sub.add_parser(
        "events",
        help="show the event history: starts, crashes, reloads, refusals, rollbacks, stops",
    )
    e.add_argument("spec", type=Path)
    e.add_argument("-n", "--lines", type=int, default=20, help="the last N events (default 20)")
    e.add_argument(
        "--since",
        type=since_time,
        default=None,
        help="only events since then: 30m, 2h, 1d, or a date and time (2026-11-30 03:00)",
    )
    e.add_argument("--json", action="store_true", help="one JSON document per line")
    e.add_argument("-f", "--follow", action="store_true", help="then print new events as they come")
    e.set_defaults(func=cmd_events)


def since_time(text: str, now: Optional[float] = None) -> float:
    """The wall-clock time `text` names: a span back from now, or a local date and time."""
    span = _SPAN.fullmatch(text.strip())
    if span:
        return (time.time() if now is None else now) - float(span.group(1)) * _UNIT[span.group(2)]
    try:
        return datetime.fromisoformat(text.strip()).timestamp()
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"'{text}' is neither a span (30m, 2h, 1d) nor a date and time (2026-11-30 03:00)"
        ) from None


def history_of(spec_path: Path) -> tuple[str, Path]:
    """The app's name and its history file. A spec that no longer loads still
    names them (the history is where to look when it went wrong): its `name`
    and `state_dir` are read as they stand, else the defaults."""
    try:
        spec = load_spec(spec_path, tree=False)
        if spec.state_dir is not None:  # the loader always sets it
            return spec.name, events_path(spec.state_dir)
    except SpecError as exc:
        print(f"{exc}\n(reading the history all the same)", file=sys.stderr)
    try:
        doc = yaml.safe_load(spec_path.read_text())
    except (OSError, yaml.YAMLError):
        doc = None
    doc = doc if isinstance(doc, dict) else {}
    given_name = doc.get("name")
    name = given_name if isinstance(given_name, str) else spec_path.stem
    given = doc.get("state_dir")
    if isinstance(given, str) and os.path.isabs(given):
        return name, events_path(Path(given))
    return name, events_path(default_state_dir(name, os.environ))


def cmd_events(args: argparse.Namespace) -> int:
    name, path = history_of(args.spec)
    found = [e for e in read_events(path) if args.since is None or e.get("at", 0) >= args.since]
    shown = found[-args.lines :] if args.lines > 0 else []
    if not found and not path.exists() and not args.follow:
        print(f"no events recorded yet for {name} ({path} does not exist)", file=sys.stderr)
        return Exit.OK
    for event in shown:
        _print(event, args.json)
    if args.follow:
        _follow(path, found[-1].get("at", 0.0) if found else 0.0, args.json)
    return Exit.OK


def _print(event: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print(json.dumps(event), flush=True)
        return
    at = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(float(event.get("at", 0))))
    print(f"{at}  {event.get('event', '?'):<8}  {describe(event)}", flush=True)
    if event.get("event") == "crash" and event.get("lines"):
        for line in event["lines"][-5:]:
            print(f"{'':29}| {line}", flush=True)


def _follow(path: Path, last: float, as_json: bool) -> None:
    """Print events newer than `last` until interrupted (the file may be rotated
    or not exist yet)."""
    while True:
        time.sleep(FOLLOW_POLL)
        for event in read_events(path):
            at = float(event.get("at", 0.0))
            if at > last:
                _print(event, as_json)
                last = at
