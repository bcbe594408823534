"""Without `logto`: every line uWSGI writes reaches the supervisor's output (the journal),
also across uWSGI's own rotations of its size-capped file in the runtime dir.

Real supervisor and uWSGI, `wrk` on uWSGI's HTTP listener long enough to fill
the 1 MiB file more than once. (`log-maxsize` implies uWSGI's `log-master`:
the master writes every worker's lines, so its rotation moves them all.)
"""

from __future__ import annotations

import re
import shutil
import time
from pathlib import Path

import pytest
from conftest import require
from harness import Supervised, copy_app
from kit import wrk
from kit.net import free_port
from kit.wait import wait_until

from supervisor.uwsgi.command import LOG_MAXSIZE

pytestmark = [pytest.mark.slow]

LOAD_SECONDS = 6
LINE = re.compile(r"GET / => generated .*\(HTTP/[0-9.]+ 200\)")  # not the checks' /links


def test_every_request_line_reaches_the_journal_across_uwsgis_rotations(
    short_tmp: Path,
) -> None:
    require(shutil.which("wrk") is not None, "wrk missing; install Debian's wrk")
    app = copy_app("blog", short_tmp / "app")
    port = free_port()
    spec = (
        f'app:\n  module: "blog:app"\n  chdir: {app}\n'
        f"uwsgi:\n  processes: 4\n  http: 127.0.0.1:{port}\n"
        f"runtime_dir: {short_tmp / 'rt'}\nwatch:\n  enabled: false\nhealth:\n  path: /links\n"
    )
    with Supervised(short_tmp, spec, name="app") as sup:
        sup.start()
        load = wrk.start(port, LOAD_SECONDS, threads=2, connections=8)
        result = wrk.finish(load, LOAD_SECONDS + 60)
        time.sleep(1.0)
        rotations = sup.log().count("triggering rotation")
        logged = len(LINE.findall(sup.log()))
        print(f"wrk: {result['requests']} requests; forwarded: {logged}; rotations: {rotations}")
        assert rotations >= 2, f"the load should fill {LOG_MAXSIZE} bytes more than once"
        wait_until(lambda: len(LINE.findall(sup.log())) >= result["requests"], 10,
                   f"{result['requests']} request lines forwarded (have {logged})")
