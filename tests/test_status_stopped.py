"""`status` for a SIGSTOPped master (issue 10, item 15): it says what it sees,
master not answering and workers serving, with LSB's 4 ("unknown"), not 3
("not running"); and back to running once the master continues. Real uWSGI."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path

from harness import Supervised, copy_app, spec_yaml
from kit.net import free_port, http_get
from kit.wait import wait_until

from supervisor.exitcodes import Exit
from supervisor.uwsgi.silence import proc_state


def test_status_of_a_stopped_master_says_workers_serve_and_recovers(short_tmp: Path) -> None:
    app = copy_app("blog", short_tmp / "app")
    port = free_port()
    with Supervised(short_tmp, spec_yaml(app, short_tmp / "rt", "blog:app", port)) as sup:
        sup.start()
        doc = sup.wait_state("running")
        master = int(doc["uwsgi_pid"])
        os.kill(master, signal.SIGSTOP)
        try:
            wait_until(lambda: proc_state(master) == "T", 10, "the master to stop")
            assert http_get(f"127.0.0.1:{port}", "/")[0] == 200  # workers serve alone
            status = sup.cli("status", str(sup.spec))
            assert status.returncode == Exit.STATUS_UNKNOWN == 4, status
            line = next(x for x in status.stdout.splitlines() if x.startswith("uWSGI:"))
            assert line == (
                f"uWSGI: master not answering on {sup.runtime_dir / 'stats.sock'} (pid"
                f" {master}, state T: stopped; `kill -CONT {master}` resumes it), 2 of 2"
                " workers alive and not stopped (they keep serving)"
            ), status.stdout
            assert "not running" not in status.stdout

            as_json = sup.cli("status", "--json", str(sup.spec))
            assert as_json.returncode == 4
            doc = json.loads(as_json.stdout)
            assert doc["uwsgi"] is None
            seen = doc["uwsgi_not_answering"]
            assert seen["master_pid"] == master and seen["master_state"] == "T"
            assert seen["master_stopped"] is True and seen["workers_serving"] == 2
            assert len(seen["workers"]) == 2
        finally:
            os.kill(master, signal.SIGCONT)  # whatever happened: cleanup needs it running

        def running() -> subprocess.CompletedProcess[str] | None:
            done = sup.cli("status", str(sup.spec))
            return done if done.returncode == Exit.OK else None

        status = wait_until(running, 30, "status to say running again")
        assert f"master pid {master}, 2/2 workers serving" in status.stdout
        as_json = sup.cli("status", "--json", str(sup.spec))
        assert as_json.returncode == 0
        assert json.loads(as_json.stdout)["uwsgi_not_answering"] is None


def test_status_without_any_uwsgi_still_says_not_running(short_tmp: Path) -> None:
    app = copy_app("blog", short_tmp / "app")
    sup = Supervised(short_tmp, spec_yaml(app, short_tmp / "rt", "blog:app", free_port()))
    try:
        status = sup.cli("status", str(sup.spec))
        assert status.returncode == Exit.NOT_RUNNING == 3, status
        assert "uWSGI: not running (no answer on" in status.stdout
        as_json = sup.cli("status", "--json", str(sup.spec))
        assert as_json.returncode == 3
        assert json.loads(as_json.stdout)["uwsgi_not_answering"] is None
    finally:
        sup.close()
