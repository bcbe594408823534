"""/metrics as Prometheus reads it (real supervisor, real uWSGI): parsed with
prometheus_client's own parser through a run with a crash and two reloads;
uwsgi_exporter's names and labels; a unix socket for it; a public address
refused. The 64-worker size and time figures are bench scenario 8."""

from __future__ import annotations

import http.client
import os
import signal
import socket
import stat
from pathlib import Path
from typing import Optional

from harness import Supervised, copy_app, spec_yaml
from kit.app import set_version
from kit.net import free_port, http_get, serves, try_get
from kit.wait import wait_until
from prometheus_client.parser import text_string_to_metric_families

FAST_BAKE = "health:\n  bake: 1s\n"
PROMETHEUS_ACCEPT = "application/openmetrics-text;version=1.0.0;q=0.5,text/plain;q=0.3"
EXPORTER_NAMES = (  # what uwsgi_exporter's dashboards query
    "uwsgi_up",
    "uwsgi_workers",
    "uwsgi_listen_queue_length",
    "uwsgi_listen_queue_errors",
    "uwsgi_worker_requests",  # _total: the parser gives a counter's family name
    "uwsgi_worker_exceptions",
    "uwsgi_worker_busy",
    "uwsgi_worker_idle",
    "uwsgi_worker_rss_bytes",
    "uwsgi_worker_respawn_count",
    "uwsgi_worker_average_response_time_seconds",
    "uwsgi_worker_app_requests",
    "uwsgi_socket_queue_length",
)

Samples = dict[str, list[tuple[dict[str, str], float]]]


def scrape_text(target: str) -> str:
    status, body = http_get(target, "/metrics")
    assert status == 200
    return body


def parse(text: str) -> Samples:
    out: Samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out.setdefault(s.name, []).append((s.labels, s.value))
    return out


def value(samples: Samples, name: str, **labels: str) -> Optional[float]:
    for got, v in samples.get(name, []):
        if all(got.get(k) == want for k, want in labels.items()):
            return v
    return None


def test_metrics_follow_a_crash_and_two_reloads(short_tmp: Path) -> None:
    app = copy_app("blog", short_tmp / "app")
    port, mport = free_port(), free_port()
    extra = FAST_BAKE + f"metrics:\n  listen: 127.0.0.1:{mport}\n"
    sup = Supervised(short_tmp, spec_yaml(app, short_tmp / "rt", "blog:app", port, extra))
    target = f"127.0.0.1:{mport}"
    with sup:
        sup.start()
        first = parse(scrape_text(target))
        for name in EXPORTER_NAMES:
            assert name in first or name + "_total" in first, name
        stats_uri = f"unix://{sup.runtime_dir / 'stats.sock'}"
        assert value(first, "uwsgi_up", stats_uri=stats_uri) == 1.0
        assert value(first, "uwsgi_workers") == 2.0
        assert {labels["worker_id"] for labels, _ in first["uwsgi_worker_requests_total"]} == {
            "1",
            "2",
        }
        assert value(first, "uwsgi_supervisor_state", state="running") == 1.0
        assert value(first, "uwsgi_supervisor_state", state="backoff") == 0.0
        assert value(first, "uwsgi_supervisor_generation") == 1.0
        assert value(first, "uwsgi_supervisor_watcher_info", backend="inotify") == 1.0
        assert value(first, "uwsgi_supervisor_socket_backlog", role="app") is not None

        # Requests show up in the workers' counters (from the loop's next sample).
        for _ in range(20):
            assert http_get(f"127.0.0.1:{port}")[0] == 200
        wait_until(
            lambda: sum(v for _, v in parse(scrape_text(target))["uwsgi_worker_requests_total"])
            >= 20,
            30,
            "20 requests in uwsgi_worker_requests_total",
        )

        # A crash: counted by its cause.
        os.kill(sup.uwsgi_pid(), signal.SIGKILL)
        sup.wait_state("running")
        wait_until(
            lambda: value(
                parse(scrape_text(target)), "uwsgi_supervisor_restarts_total",
                cause="killed by SIGKILL",
            ) == 1.0,
            30,
            "the crash in uwsgi_supervisor_restarts_total",
        )  # fmt: skip

        # Two reloads: a swap asked for by `reload`, and one by a code push.
        r = sup.cli("reload", str(sup.spec))
        assert r.returncode == 0, r.stderr
        set_version(app / "blog.py", "v2")
        wait_until(lambda: serves(port, "v2"), 60, "v2 served")
        after = wait_until(
            lambda: (s := parse(scrape_text(target)))
            and value(s, "uwsgi_supervisor_reloads_total", mode="swap", verdict="applied") == 2.0
            and s,
            60,
            "two applied swaps in uwsgi_supervisor_reloads_total",
        )
        assert value(after, "uwsgi_supervisor_generation") == 4.0  # start, restart, two swaps
        duration = value(after, "uwsgi_supervisor_last_reload_duration_seconds")
        assert duration is not None and duration >= 1.0  # the bake is part of it
        assert value(after, "uwsgi_supervisor_rollbacks_total") == 0.0
        assert value(after, "uwsgi_up") == 1.0
        # A counter of a worker only goes up while that worker lives; these are
        # the new master's workers: uWSGI's own figures, as uwsgi_exporter gives them.
        assert value(after, "uwsgi_worker_respawn_count_total", worker_id="1") is not None
        # Anything but /metrics is not there.
        assert http_get(target, "/nothing")[0] == 404
        # Prometheus asks for OpenMetrics first; it gets the text format, which it reads.
        conn = http.client.HTTPConnection("127.0.0.1", mport, timeout=10)
        conn.request("GET", "/metrics", headers={"Accept": PROMETHEUS_ACCEPT})
        resp = conn.getresponse()
        assert resp.status == 200 and resp.read()
        assert resp.getheader("Content-Type") == "text/plain; version=0.0.4; charset=utf-8"
        conn.close()


def test_metrics_on_a_unix_socket_for_the_service_group(short_tmp: Path) -> None:
    app = copy_app("blog", short_tmp / "app")
    port = free_port()
    path = short_tmp / "metrics.sock"
    extra = f"metrics:\n  listen: {path}\n"
    sup = Supervised(short_tmp, spec_yaml(app, short_tmp / "rt", "blog:app", port, extra))
    with sup:
        sup.start()
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o660
        text = unix_get(path, "/metrics")
        assert "uwsgi_worker_requests_total{" in text
        assert 'uwsgi_supervisor_state{state="running"} 1.0' in text
    assert not path.exists()  # removed on the way out


def test_a_public_metrics_address_is_refused(short_tmp: Path) -> None:
    app = copy_app("blog", short_tmp / "app")
    extra = "metrics:\n  listen: 0.0.0.0:9117\n"
    sup = Supervised(short_tmp, spec_yaml(app, short_tmp / "rt", "blog:app", free_port(), extra))
    r = sup.cli("check", str(sup.spec))
    assert r.returncode == 78
    assert "metrics.listen: 0.0.0.0:9117 listens on all network interfaces" in r.stderr


def test_a_port_already_taken_leaves_the_app_supervised(short_tmp: Path) -> None:
    app = copy_app("blog", short_tmp / "app")
    port = free_port()
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen(1)
    mport = taken.getsockname()[1]
    extra = f"metrics:\n  listen: 127.0.0.1:{mport}\n"
    sup = Supervised(short_tmp, spec_yaml(app, short_tmp / "rt", "blog:app", port, extra))
    try:
        with sup:
            sup.start()
            assert serves(port, "v1")
            assert f"cannot serve metrics on 127.0.0.1:{mport}" in sup.log()
    finally:
        taken.close()


def unix_get(path: Path, url: str) -> str:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(10)
        s.connect(str(path))
        s.sendall(f"GET {url} HTTP/1.0\r\nHost: local\r\n\r\n".encode())
        chunks = []
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            chunks.append(chunk)
    head, _, body = b"".join(chunks).partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.0 200"), head
    return body.decode()


def test_sighup_moves_the_metrics_where_the_spec_now_says(short_tmp: Path) -> None:
    app = copy_app("blog", short_tmp / "app")
    port, first, second = free_port(), free_port(), free_port()
    extra = f"metrics:\n  listen: 127.0.0.1:{first}\n"
    text = spec_yaml(app, short_tmp / "rt", "blog:app", port, extra)
    sup = Supervised(short_tmp, text)
    with sup:
        sup.start()
        assert "uwsgi_up" in scrape_text(f"127.0.0.1:{first}")
        sup.spec.write_text(text.replace(f"127.0.0.1:{first}", f"127.0.0.1:{second}"))
        sup.signal(signal.SIGHUP)
        wait_until(
            lambda: try_get(f"127.0.0.1:{second}", "/metrics"), 30, "metrics on the new port"
        )
        assert try_get(f"127.0.0.1:{first}", "/metrics") is None  # the old one is closed
        assert serves(port, "v1")
