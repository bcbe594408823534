"""The serving master's FIFO and stats socket come back when something deletes
them (a tmp cleaner on a /tmp runtime dir, a careless `rm`): real uWSGI.

They used to stay gone: the watchdog stopped, `status` said "not running"
while the app served, and a code push took 91 s to go live.
"""

from __future__ import annotations

import os
from pathlib import Path

from harness import Supervised, copy_app, spec_yaml
from kit.app import set_version
from kit.net import free_port, serves
from kit.wait import wait_until


def _blog(short_tmp: Path) -> tuple[Supervised, int, Path]:
    app = copy_app("blog", short_tmp / "app")
    port = free_port()
    text = spec_yaml(app, short_tmp / "rt", "blog:app", port, "watch:\n  debounce: 0.2s\n")
    # A 4 s watchdog: pings stop within 2 s of the stats socket going quiet.
    return Supervised(short_tmp, text, env={"WATCHDOG_USEC": "4000000"}), port, app


def _serving_files(rt: Path) -> tuple[Path, Path]:
    """The serving instance's FIFO and stats socket (what the links point at)."""
    return rt / os.readlink(rt / "master.fifo"), rt / os.readlink(rt / "stats.sock")


def test_a_deleted_fifo_is_recreated_and_pushes_still_go_live(short_tmp: Path) -> None:
    sup, port, app = _blog(short_tmp)
    with sup:
        sup.start()
        pid = sup.uwsgi_pid()
        fifo, _ = _serving_files(sup.runtime_dir)
        fifo.unlink()
        (sup.runtime_dir / "master.fifo").unlink()
        wait_until(lambda: fifo.exists(), 10, f"{fifo} recreated; log:\n{sup.log()[-2000:]}")
        assert "vanished; uWSGI pid" in sup.log()
        assert sup.uwsgi_pid() == pid  # the same master: no swap was needed
        set_version(app / "blog.py", "v2")
        wait_until(lambda: serves(port, "v2"), 30, "the push served")
        assert (sup.runtime_dir / "master.fifo").exists()


def test_a_deleted_stats_socket_gets_a_new_master_without_downtime(short_tmp: Path) -> None:
    sup, port, app = _blog(short_tmp)
    with sup:
        sup.start()
        pid = sup.uwsgi_pid()
        _, stats = _serving_files(sup.runtime_dir)
        stats.unlink()
        sup.notify.poll()
        wait_until(lambda: sup.state().get("uwsgi_pid") not in (None, pid), 60, "a new master")
        state = sup.wait_state("running")
        assert "stats socket" in state["status"] and "vanished" in state["status"], state
        assert serves(port, "v1")
        r = sup.cli("status", str(sup.spec))
        assert r.returncode == 0 and "running" in r.stdout, r.stdout + r.stderr
        assert (sup.runtime_dir / "stats.sock").exists()
        # The watchdog's evidence of life is back: stats are fresh again.
        sup.notify.poll()
        wait_until(lambda: "WATCHDOG" in sup.notify.keys(ignore=()), 10, "a watchdog ping")
        assert "replacing uWSGI through a swap" in sup.log()
