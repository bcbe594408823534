"""Issue: crash restart, graceful stop and reload, systemd notify and watchdog.

Real supervisor, real uWSGI, a real NOTIFY_SOCKET datagram socket bound here.
"""

from __future__ import annotations

import http.client
import os
import signal
import threading
import time
from pathlib import Path

from harness import Supervised, copy_app, spec_yaml
from kit.net import free_port, http_get, try_get
from kit.procs import alive, children
from kit.wait import wait_until

from supervisor.uwsgi import procs


def blog(short_tmp: Path, extra: str = "") -> tuple[str, int]:
    app = copy_app("blog", short_tmp / "app")
    port = free_port()
    return spec_yaml(app, short_tmp / "rt", "blog:app", port, extra), port


def test_notify_sequence_for_start_reload_stop(short_tmp: Path) -> None:
    text, port = blog(short_tmp)
    with Supervised(short_tmp, text) as sup:
        sup.start()
        # READY means serving: the very first request after it succeeds.
        assert http_get(f"127.0.0.1:{port}", "/")[0] == 200
        before_reload = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        sup.signal(signal.SIGHUP)
        sup.notify.wait_for("READY", count=2)
        assert http_get(f"127.0.0.1:{port}", "/")[0] == 200
        sup.signal(signal.SIGTERM)
        assert sup.wait_exit() == 0
        assert sup.notify.keys() == ["READY", "RELOADING", "READY", "STOPPING"]
        reloading = next(f for f in sup.notify.poll() if "RELOADING" in f)
        usec = int(reloading["MONOTONIC_USEC"])
        assert before_reload <= usec <= before_reload + 10_000_000
        statuses = [f["STATUS"] for f in sup.notify.poll() if "STATUS" in f]
        assert any(s.startswith("serving: 2/2 workers") for s in statuses), statuses


def test_ready_waits_for_a_slow_app_import(short_tmp: Path) -> None:
    text, port = blog(short_tmp)
    app = short_tmp / "app" / "blog.py"
    app.write_text("import time\ntime.sleep(2)\n" + app.read_text())
    with Supervised(short_tmp, text) as sup:
        started = time.monotonic()
        sup.start(wait_ready=False)
        sup.notify.wait_for("READY")
        ready_at = sup.notify.received[-1][0]
        assert ready_at - started >= 2.0
        assert http_get(f"127.0.0.1:{port}", "/")[0] == 200


def test_kill_9_of_the_master_recovers_every_time_without_leftovers(short_tmp: Path) -> None:
    text, port = blog(short_tmp)
    with Supervised(short_tmp, text) as sup:
        sup.start()
        for round_ in range(3):
            master = sup.uwsgi_pid()
            old = [master, *children(master)]
            assert len(old) >= 3  # master, 2 workers
            os.kill(master, signal.SIGKILL)
            wait_until(
                lambda m=master: sup.state().get("uwsgi_pid") not in (None, m),
                30,
                f"a new master in round {round_}; log:\n{sup.log()[-2000:]}",
            )
            sup.wait_state("running")
            assert http_get(f"127.0.0.1:{port}", "/")[0] == 200
            left = [p for p in old if alive(p)]
            assert left == [], f"round {round_}: processes of the old instance left: {left}"
        assert "Address already in use" not in sup.log()
        assert sup.state()["crashes"] == 3


def test_kill_9_of_a_worker_is_uwsgis_business(short_tmp: Path) -> None:
    text, port = blog(short_tmp)
    with Supervised(short_tmp, text) as sup:
        sup.start()
        master = sup.uwsgi_pid()
        worker = int(http_get(f"127.0.0.1:{port}", "/")[1].split("pid=")[1])
        os.kill(worker, signal.SIGKILL)
        wait_until(lambda: not alive(worker), 10, "the worker to die")
        wait_until(lambda: try_get(f"127.0.0.1:{port}", "/"), 10, "serving")
        time.sleep(1.5)
        assert sup.uwsgi_pid() == master
        assert "backoff" not in sup.log() and sup.state()["state"] == "running"


def test_import_failure_backs_off_names_the_error_and_recovers(short_tmp: Path) -> None:
    extra = "restart:\n  backoff: {initial: 200ms, max: 2s, factor: 2, jitter: 0}\n"
    text, port = blog(short_tmp, extra)
    app = short_tmp / "app" / "blog.py"
    good = app.read_text()
    app.write_text("import no_such_dependency\n" + good)
    with Supervised(short_tmp, text) as sup:
        sup.start(wait_ready=False)
        wait_until(lambda: (sup.state().get("crashes") or 0) >= 4, 30, "4 crashes")
        delays = [
            float(line.rsplit("restart in ", 1)[1].rstrip("s)"))
            for line in sup.log().splitlines()
            if "-> backoff" in line
        ]
        assert delays[:4] == [0.0, 0.2, 0.4, 0.8], delays
        statuses = [f.get("STATUS", "") for f in sup.notify.poll()]
        assert any(
            s.startswith("backoff: crash")
                and "ModuleNotFoundError in blog.py line 1: No module named" in s
            for s in statuses
        ), statuses
        status = sup.cli("status", str(sup.spec))
        assert "backoff" in status.stdout and "no_such_dependency" in status.stdout
        assert "READY=1" not in str(sup.notify.poll())
        app.write_text(good)  # the fix lands; the next attempt picks it up
        sup.notify.wait_for("READY", timeout=30)
        assert http_get(f"127.0.0.1:{port}", "/")[0] == 200


def test_sigterm_lets_the_in_flight_request_finish(short_tmp: Path) -> None:
    text, port = blog(short_tmp)
    with Supervised(short_tmp, text) as sup:
        sup.start()
        master = sup.uwsgi_pid()
        tree = [master, *children(master)]
        result: dict[str, object] = {}

        def slow() -> None:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            conn.request("GET", "/slow?s=2")
            resp = conn.getresponse()
            result["status"], result["body"] = resp.status, resp.read()

        t = threading.Thread(target=slow)
        t.start()
        time.sleep(0.5)  # the request is in a worker now
        sup.signal(signal.SIGTERM)
        assert sup.wait_exit(timeout=40) == 0
        t.join(10)
        assert result.get("status") == 200 and result.get("body") == b"v1 slow done\n"
        assert [p for p in tree if alive(p)] == []
        assert procs.instance_pids(sup.runtime_dir) == []


def test_uwsgi_that_will_not_quit_is_killed_after_the_stop_timeout(short_tmp: Path) -> None:
    text, port = blog(short_tmp, "stop:\n  timeout: 1s\n")
    with Supervised(short_tmp, text) as sup:
        sup.start()
        master = sup.uwsgi_pid()
        tree = [master, *children(master)]
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        conn.request("GET", "/slow?s=60")  # `q` waits for it with no timeout of its own
        time.sleep(0.5)
        os.kill(master, signal.SIGSTOP)  # and this master would not even act on SIGINT
        t0 = time.monotonic()
        sup.signal(signal.SIGTERM)
        assert sup.wait_exit(timeout=30) == 0
        took = time.monotonic() - t0
        conn.close()
        assert took < 15, took
        assert [p for p in tree if alive(p)] == []
        log = sup.log()
        assert "sending SIGINT" in log and "sending SIGKILL" in log


def test_a_leftover_of_another_spec_is_stopped_not_adopted(short_tmp: Path) -> None:
    """A uWSGI whose command line is not what the spec gives now (the spec
    changed while no supervisor ran) is stopped, and a fresh one started."""
    text, port = blog(short_tmp)
    first = Supervised(short_tmp, text, name="app")
    with first:
        first.start()
        old_master = first.uwsgi_pid()
        assert first.proc is not None
        first.proc.kill()
        first.proc.wait()
        assert alive(old_master)  # uWSGI outlives a SIGKILLed supervisor
        changed = text.replace("processes: 2", "processes: 3")
        with Supervised(short_tmp, changed, name="app") as second:
            second.start()
            assert "command line differs from what the spec gives now" in second.log()
            assert "left over from a previous supervisor" in second.log()
            assert not alive(old_master)
            assert http_get(f"127.0.0.1:{port}", "/")[0] == 200
            assert second.state()["status"].startswith("serving: 3/3 workers")
            assert "Address already in use" not in second.log()


def test_watchdog_pings_stop_while_uwsgi_is_stopped(short_tmp: Path) -> None:
    text, port = blog(short_tmp)
    with Supervised(short_tmp, text, env={"WATCHDOG_USEC": "1000000"}) as sup:
        sup.start()

        def pings_during(seconds: float) -> int:
            sup.notify.poll()
            start = time.monotonic()
            time.sleep(seconds)
            sup.notify.poll()
            return sum(1 for t, f in sup.notify.received if t >= start and "WATCHDOG" in f)

        assert pings_during(2.0) >= 3
        master = sup.uwsgi_pid()
        os.kill(master, signal.SIGSTOP)
        try:
            time.sleep(2.5)  # the hang is noticed within 2 stats periods
            assert pings_during(3.0) == 0
        finally:
            os.kill(master, signal.SIGCONT)
        time.sleep(1.0)
        assert pings_during(2.0) >= 3


def test_sighup_with_a_broken_spec_keeps_serving(short_tmp: Path) -> None:
    text, port = blog(short_tmp)
    with Supervised(short_tmp, text) as sup:
        sup.start()
        master = sup.uwsgi_pid()
        sup.spec.write_text(text.replace("processes: 2", "processes: two"))
        sup.signal(signal.SIGHUP)
        wait_until(lambda: "spec is invalid" in sup.log(), 10, "the spec error in the log")
        assert f"{sup.spec}:5:" in sup.log() and "uwsgi.processes" in sup.log()
        assert http_get(f"127.0.0.1:{port}", "/")[0] == 200
        assert sup.uwsgi_pid() == master and sup.state()["state"] == "running"
        r = sup.cli("reload", str(sup.spec))
        assert r.returncode != 0 and "uwsgi.processes" in r.stderr


def test_spec_change_restarts_uwsgi_with_the_new_command_line(short_tmp: Path) -> None:
    text, port = blog(short_tmp)
    with Supervised(short_tmp, text) as sup:
        sup.start()
        master = sup.uwsgi_pid()
        sup.spec.write_text(text.replace("processes: 2", "processes: 3"))
        r = sup.cli("reload", str(sup.spec))
        assert r.returncode == 0, r.stderr
        assert sup.uwsgi_pid() != master
        assert sup.state()["status"].startswith("serving: 3/3 workers")


def test_a_hung_leftover_uwsgi_and_a_stale_fifo_do_not_stop_a_new_start(short_tmp: Path) -> None:
    text, port = blog(short_tmp, "stop:\n  timeout: 1s\n")
    first = Supervised(short_tmp, text, name="app")
    with first:
        first.start()
        old_master = first.uwsgi_pid()
        old = [old_master, *children(old_master)]
        assert first.proc is not None
        first.proc.kill()
        first.proc.wait()
        os.kill(old_master, signal.SIGSTOP)  # hung: reads neither its FIFO nor SIGINT
        os.mkfifo(first.runtime_dir / "master-99.fifo", 0o600)  # nobody reads this one
        with Supervised(short_tmp, text, name="app") as second:
            second.start(timeout=60)
            assert http_get(f"127.0.0.1:{port}", "/")[0] == 200
            assert "killed leftover uWSGI processes" in second.log()
            assert [p for p in old if alive(p)] == []


def test_sighup_cannot_move_the_runtime_dir(short_tmp: Path) -> None:
    text, port = blog(short_tmp)
    with Supervised(short_tmp, text) as sup:
        sup.start()
        master = sup.uwsgi_pid()
        moved = text.replace(
            f"runtime_dir: {short_tmp / 'rt'}", f"runtime_dir: {short_tmp / 'rt2'}"
        )
        sup.spec.write_text(moved)
        sup.signal(signal.SIGHUP)
        wait_until(lambda: "takes a restart" in sup.log(), 10, "the refusal in the log")
        wait_until(lambda: sup.state()["reload_done"]["ok"] is False, 5, "the failed reload")
        assert sup.uwsgi_pid() == master and http_get(f"127.0.0.1:{port}", "/")[0] == 200
        assert not (short_tmp / "rt2").exists()


def test_sighup_reads_a_large_spec_without_stalling_watchdog_pings(short_tmp: Path) -> None:
    """The spec is parsed off the loop's thread: a ~1 MB spec (seconds of
    YAML parsing) used to stop watchdog pings and stats polling meanwhile."""
    text, port = blog(short_tmp)
    with Supervised(short_tmp, text, env={"WATCHDOG_USEC": "2000000"}) as sup:
        sup.start()
        master = sup.uwsgi_pid()
        env = "".join(f"    K{i}: 'v{i}'\n" for i in range(45000))
        big = text + "app_env_follows: 1\n"  # an unknown key: refused after the full parse
        big = big.replace("app:\n", "app:\n  env:\n" + env, 1)
        assert 900_000 < len(big) < 1_000_000  # under the loader's 1 MiB cap
        sup.spec.write_text(big)
        sup.notify.poll()
        start = time.monotonic()
        sup.signal(signal.SIGHUP)
        # Pings are timed when read: read them all along.
        wait_until(
            lambda: sup.notify.poll() is not None and "spec is invalid" in sup.log(),
            60,
            "the refusal after the parse",
        )
        took = time.monotonic() - start
        sup.notify.poll()
        pings = sorted(t for t, f in sup.notify.received if t >= start and "WATCHDOG" in f)
        assert took > 2.0, f"the parse took {took:.1f} s: too short to show a stall"
        gaps = [b - a for a, b in zip([start, *pings], [*pings, time.monotonic()])]
        assert max(gaps) < 1.9, f"watchdog pings stalled {max(gaps):.1f} s during the parse"
        assert "app_env_follows" in sup.log()
        assert sup.uwsgi_pid() == master and http_get(f"127.0.0.1:{port}", "/")[0] == 200
