"""A supervisor killed and started again adopts the uWSGI it left serving
(real supervisor, real uWSGI, a load client running throughout).

It used to stop that healthy uWSGI and start another: about 1 s of 502s
(3,610 failed requests through nginx under wrk -c32).
"""

from __future__ import annotations

import signal
from pathlib import Path

from harness import Supervised, copy_app, spec_yaml
from kit.app import set_version
from kit.load import Load
from kit.net import free_port, serves
from kit.procs import alive
from kit.wait import wait_until

from supervisor.uwsgi import procs


def test_a_restarted_supervisor_adopts_the_serving_uwsgi_and_loses_nothing(
    short_tmp: Path,
) -> None:
    app = copy_app("blog", short_tmp / "app")
    port = free_port()
    text = spec_yaml(app, short_tmp / "rt", "blog:app", port, "watch:\n  debounce: 0.2s\n")
    first = Supervised(short_tmp, text, name="app")
    with first:
        first.start()
        master = first.uwsgi_pid()
        with Load(port, threads=4, limit=60) as load:
            wait_until(lambda: load.result.ok > 50, 10, "the load running")
            assert first.proc is not None
            first.proc.kill()  # SIGKILL: no cleanup of any kind
            first.proc.wait()
            with Supervised(short_tmp, text, name="app") as second:
                second.start()
                assert f"adopted uWSGI pid {master}" in second.log()
                assert "left over" not in second.log()
                assert second.uwsgi_pid() == master and alive(master)
                served = load.result.ok
                wait_until(lambda: load.result.ok > served + 50, 10, "serving after adoption")
                # The adopted master takes code pushes like one of our own.
                set_version(app / "blog.py", "v2")
                wait_until(lambda: serves(port, "v2"), 30, "the push served")
                result = load.result
                assert result.failed == 0, result.errors
                # ... and stops when asked, leaving nothing behind.
                second.signal(signal.SIGTERM)
                assert second.wait_exit(40) == 0
                assert not alive(master)
                assert procs.instance_pids(second.runtime_dir) == []


def test_an_adopted_master_that_dies_is_restarted(short_tmp: Path) -> None:
    app = copy_app("blog", short_tmp / "app")
    port = free_port()
    text = spec_yaml(app, short_tmp / "rt", "blog:app", port)
    first = Supervised(short_tmp, text, name="app")
    with first:
        first.start()
        master = first.uwsgi_pid()
        assert first.proc is not None
        first.proc.kill()
        first.proc.wait()
        with Supervised(short_tmp, text, name="app") as second:
            second.start()
            assert second.uwsgi_pid() == master
            procs.signal_pids([master], signal.SIGKILL)
            wait_until(
                lambda: second.state().get("uwsgi_pid") not in (None, master)
                and second.state().get("state") == "running",
                60,
                f"a new master; log:\n{second.log()[-2000:]}",
            )
            assert "an adopted master" in second.log()
            assert serves(port, "v1")
