"""The /metrics server: one thread blocked in select() on its socket (no
wake-up between scrapes), one scrape at a time, each bounded in time."""

from __future__ import annotations

import gc
import grp
import http.server
import os
import select
import socket
import stat
import threading
from pathlib import Path
from typing import Any, Callable, Optional

from prometheus_client.exposition import generate_latest
from prometheus_client.registry import Collector, CollectorRegistry

from supervisor.metrics.collect import UwsgiCollector
from supervisor.metrics.model import Counters, View
from supervisor.spec.model import Address, Spec, runtime_paths

# The text format every Prometheus reads (prometheus_client's generate_latest
# writes it; its own constant names a newer version in recent releases).
TEXT_FORMAT = "text/plain; version=0.0.4; charset=utf-8"
SCRAPE_TIMEOUT = 5.0  # a client that stalls is dropped: the next scrape is served


class _Handler(http.server.BaseHTTPRequestHandler):
    registry: CollectorRegistry

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        if self.path.split("?")[0] not in ("/metrics", "/"):
            self.send_error(404, "only /metrics is served here")
            return
        # Always the text format, whatever Accept prefers: Prometheus takes it,
        # it carries everything here, and prometheus_client renders it in about
        # two thirds of OpenMetrics' time (25 against 39 ms with 64 workers,
        # bench 8), well within a scrape's 50 ms.
        encoder, content_type = generate_latest, TEXT_FORMAT
        # A render allocates some 10,000 short-lived objects with 64 workers: a
        # collection in the middle of it only adds to the scrape's time.
        gc.disable()
        try:
            body = encoder(self.registry)
        finally:
            gc.enable()
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # a scrape every 15 s is not news

    def address_string(self) -> str:
        return "local"  # a unix socket's peer has no address


class MetricsServer:
    """One thread serving /metrics on `address`, one scrape at a time."""

    def __init__(
        self,
        address: Address,
        collector: Collector,
        group_id: Optional[int] = None,
    ) -> None:
        self.address = address
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(collector)
        self.sock = _listen(address, group_id)
        self._stop_r, self._stop_w = os.pipe()
        self._thread = threading.Thread(target=self._serve, name="metrics", daemon=True)
        handler = type("Handler", (_Handler,), {"registry": self.registry})
        self._handler: type[_Handler] = handler
        self._thread.start()

    def _serve(self) -> None:
        while True:
            ready, _, _ = select.select([self.sock, self._stop_r], [], [])
            if self._stop_r in ready:
                return
            try:
                conn, peer = self.sock.accept()
            except OSError:
                continue
            try:
                conn.settimeout(SCRAPE_TIMEOUT)
                self._handler(conn, peer or ("local", 0), None)  # type: ignore[arg-type]
            except Exception:  # a broken client must not end the metrics
                pass
            finally:
                conn.close()

    def close(self) -> None:
        os.write(self._stop_w, b"\0")
        self._thread.join(timeout=SCRAPE_TIMEOUT + 1)
        self.sock.close()
        for fd in (self._stop_r, self._stop_w):
            os.close(fd)
        if self.address.path is not None:
            _unlink_socket(self.address.path)


def _listen(address: Address, group_id: Optional[int]) -> socket.socket:
    """Bind and listen; OSError names the address if it cannot be."""
    if address.path is not None:
        _unlink_socket(address.path)  # a stale socket of an earlier run
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        old = os.umask(0o117)
        try:
            sock.bind(str(address.path))
        finally:
            os.umask(old)
        if group_id is not None:
            os.chown(address.path, -1, group_id)
    else:
        family = socket.AF_INET6 if ":" in address.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((address.host, address.port))
    sock.listen(16)
    return sock


def _unlink_socket(path: Path) -> None:
    """Remove a socket file; never anything else found at that path."""
    try:
        if stat.S_ISSOCK(os.lstat(path).st_mode):
            os.unlink(path)
    except FileNotFoundError:
        pass


def start_metrics(
    spec: Spec,
    view: Callable[[], Optional[View]],
    counters: Counters,
    log_error: Callable[[str], None],
) -> Optional[MetricsServer]:
    """Serve /metrics where the spec says; None (logged) if it cannot listen there:
    the app is supervised all the same."""
    listen = spec.metrics.listen
    if listen is None:
        return None
    stats_uri = f"unix://{runtime_paths(spec).stats}"
    group = None
    if listen.path is not None and spec.group is not None:
        group = grp.getgrnam(spec.group).gr_gid
    try:
        return MetricsServer(listen, UwsgiCollector(view, counters, stats_uri), group)
    except OSError as exc:
        log_error(f"cannot serve metrics on {listen.for_uwsgi()}: {exc}; supervising without them")
        return None
