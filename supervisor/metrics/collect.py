"""Prometheus metrics at /metrics, served by the supervisor itself.

No exporter to run beside it: the names and labels of uwsgi_exporter (the
Go sidecar that reads the stats socket) for what uWSGI's stats say, so
dashboards made for it work unchanged, plus the supervisor's own
(`uwsgi_supervisor_*`: state, generation, reloads by mode and verdict,
restarts by cause, refusals, rollbacks, backoff, the sockets' queues).

A scrape never talks to uWSGI: it is answered from the loop's last stats
sample (`View`, replaced whole by the loop each turn, so the serving thread
reads one consistent picture), in time and size bounded by the number of
workers. The server is one thread blocked in select() on its socket: no
wake-up between scrapes.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any, Callable, Optional

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from supervisor.lifecycle.states import State
from supervisor.metrics.model import Counters, View

US = 1_000_000.0
WORKER_STATUSES = ("busy", "idle", "cheap")


class UwsgiCollector(Collector):
    def __init__(self, view: Callable[[], Optional[View]], counters: Counters, stats_uri: str):
        self.view = view
        self.counters = counters
        self.stats_uri = stats_uri

    def collect(self) -> Iterator[Any]:
        view = self.view()
        if view is None:
            return
        yield from self._uwsgi(view)
        yield from self._supervisor(view)

    # -- uwsgi_exporter's names ---------------------------------------------------

    def _family(
        self, kind: type, name: str, doc: str, labels: Iterable[str] = ()
    ) -> Any:
        return kind(name, doc, labels=["stats_uri", *labels])

    def _uwsgi(self, view: View) -> Iterator[Any]:
        doc = view.stats or {}
        up = view.stats is not None and view.state in (State.RUNNING, State.RELOADING)
        g = self._family(GaugeMetricFamily, "uwsgi_up", "Whether the uWSGI server is up.")
        g.add_metric([self.stats_uri], 1.0 if up else 0.0)
        yield g
        if view.stats is None:
            return
        workers = [w for w in doc.get("workers", ()) if w.get("id", 0) != 0]
        for key, name, help_ in (
            ("listen_queue", "uwsgi_listen_queue_length", "Length of listen queue."),
            ("listen_queue_errors", "uwsgi_listen_queue_errors", "Number of listen queue errors."),
            ("signal_queue", "uwsgi_signal_queue_length", "Length of signal queue."),
        ):
            g = self._family(GaugeMetricFamily, name, help_)
            g.add_metric([self.stats_uri], float(doc.get(key, 0)))
            yield g
        g = self._family(GaugeMetricFamily, "uwsgi_workers", "Number of workers.")
        g.add_metric([self.stats_uri], float(len(workers)))
        yield g
        yield from self._sockets(doc)
        yield from self._workers(workers)

    def _sockets(self, doc: Mapping[str, Any]) -> Iterator[Any]:
        specs = (
            ("queue", "uwsgi_socket_queue_length", "Length of socket queue."),
            ("max_queue", "uwsgi_socket_max_queue_length", "Max length of socket queue."),
            ("shared", "uwsgi_socket_shared", "Is shared socket?"),
            ("can_offload", "uwsgi_socket_can_offload", "Can socket offload?"),
        )
        families = [
            (key, self._family(GaugeMetricFamily, name, help_, ("name", "proto")))
            for key, name, help_ in specs
        ]
        seen: set[tuple[str, str]] = set()
        for sock in doc.get("sockets", ()):
            labels = (str(sock.get("name", "")), str(sock.get("proto", "")))
            if labels in seen:  # the first of a name and protocol, as uwsgi_exporter
                continue
            seen.add(labels)
            for key, family in families:
                family.add_metric([self.stats_uri, *labels], float(sock.get(key, 0)))
        for _, family in families:
            yield family

    def _workers(self, workers: list[Mapping[str, Any]]) -> Iterator[Any]:
        g, c = GaugeMetricFamily, CounterMetricFamily
        specs: list[tuple[type, str, str, Callable[[Mapping[str, Any]], float]]] = [
            (g, "accepting", "Is this worker accepting requests?", _num("accepting")),
            (g, "delta_requests", "Number of delta requests", _num("delta_requests")),
            (g, "signal_queue_length", "Length of signal queue.", _num("signal_queue")),
            (g, "rss_bytes", "Worker RSS bytes.", _num("rss")),
            (g, "vsz_bytes", "Worker VSZ bytes.", _num("vsz")),
            (g, "running_time_seconds", "Worker running time in seconds.", _us("running_time")),
            (g, "last_spawn_time_seconds", "Last spawn time in seconds since epoch.",
             _num("last_spawn")),
            (g, "average_response_time_seconds", "Average response time in seconds.",
             _us("avg_rt")),
            (g, "apps", "Number of apps.", lambda w: float(len(w.get("apps") or ()))),
            (g, "cores", "Number of cores.", lambda w: float(len(w.get("cores") or ()))),
            *[
                (g, s, f"Is core in {s}", lambda w, s=s: 1.0 if w.get("status") == s else 0.0)
                for s in WORKER_STATUSES
            ],
            (c, "requests", "Total number of requests.", _num("requests")),
            (c, "exceptions", "Total number of exceptions.", _num("exceptions")),
            (c, "harakiri_count", "Total number of harakiri count.", _num("harakiri_count")),
            (c, "signals", "Total number of signals.", _num("signals")),
            (c, "respawn_count", "Total number of respawn count.", _num("respawn_count")),
            (c, "transmitted_bytes", "Worker transmitted bytes.", _num("tx")),
        ]  # fmt: skip
        families = [
            (self._family(kind, f"uwsgi_worker_{name}", help_, ("worker_id",)), value)
            for kind, name, help_, value in specs
        ]
        app_labels = ("worker_id", "app_id", "mountpoint", "chdir")
        app_startup = self._family(
            g, "uwsgi_worker_app_startup_time_seconds", "How long this app took to start.",
            app_labels,
        )  # fmt: skip
        app_requests = self._family(
            c, "uwsgi_worker_app_requests", "Total number of requests.", app_labels
        )
        app_exceptions = self._family(
            c, "uwsgi_worker_app_exceptions", "Total number of exceptions.", app_labels
        )
        for w in workers:
            wid = str(w.get("id", 0))
            for family, value in families:
                family.add_metric([self.stats_uri, wid], value(w))
            for app in w.get("apps") or ():
                labels = [self.stats_uri, wid, str(app.get("id", 0))]
                labels += [str(app.get("mountpoint", "")), str(app.get("chdir", ""))]
                app_startup.add_metric(labels, float(app.get("startup_time", 0)))
                app_requests.add_metric(labels, float(app.get("requests", 0)))
                app_exceptions.add_metric(labels, float(app.get("exceptions", 0)))
        for family, _ in families:
            yield family
        yield from (app_startup, app_requests, app_exceptions)

    # -- the supervisor's own -------------------------------------------------------

    def _supervisor(self, view: View) -> Iterator[Any]:
        c, counts = GaugeMetricFamily, self.counters
        state = c("uwsgi_supervisor_state", "The supervisor's state (1 for the current one).",
                  labels=["state"])  # fmt: skip
        for s in State:
            state.add_metric([s.value], 1.0 if s is view.state else 0.0)
        yield state
        for name, help_, value in (
            ("generation", "Code loads that reached every worker since start.", view.generation),
            ("crashes", "Crashes in a row (0 once uWSGI ran healthily).", view.crashes),
            ("backoff_delay_seconds", "Seconds until the next restart after a crash.",
             view.backoff_delay),
            ("rollbacks_total", "Swaps rolled back to the previous master.", counts.rollbacks),
        ):  # fmt: skip
            kind = CounterMetricFamily if name.endswith("_total") else GaugeMetricFamily
            family = kind(f"uwsgi_supervisor_{name}", help_)
            family.add_metric([], float(value))
            yield family
        if counts.last_reload_duration is not None:
            g = GaugeMetricFamily(
                "uwsgi_supervisor_last_reload_duration_seconds",
                "How long the last reload took, from asked to its verdict"
                " (a swap's bake included).",
            )
            g.add_metric([], counts.last_reload_duration)
            yield g
        if view.stats_age is not None:
            g = GaugeMetricFamily(
                "uwsgi_supervisor_stats_age_seconds", "Age of the stats sample this scrape shows."
            )
            g.add_metric([], view.stats_age)
            yield g
        reloads = CounterMetricFamily(
            "uwsgi_supervisor_reloads", "Reloads by mode and verdict.", labels=["mode", "verdict"]
        )
        for (mode, verdict), n in counts.reloads.items():
            reloads.add_metric([mode, verdict], float(n))
        yield reloads
        restarts = CounterMetricFamily(
            "uwsgi_supervisor_restarts", "uWSGI restarts by cause: how it ended, or hung.",
            labels=["cause"],
        )  # fmt: skip
        for cause, n in counts.restarts.items():
            restarts.add_metric([cause], float(n))
        yield restarts
        refusals = CounterMetricFamily(
            "uwsgi_supervisor_refusals",
            "Reloads refused before their code took traffic, by check: import, health,"
            " quarantine, timeout, other.",
            labels=["check"],
        )
        for check, n in counts.refusals.items():
            refusals.add_metric([check], float(n))
        yield refusals
        watcher = GaugeMetricFamily(
            "uwsgi_supervisor_watcher_info", "How code pushes are noticed.", labels=["backend"]
        )
        watcher.add_metric([view.watcher], 1.0)
        yield watcher
        queued = GaugeMetricFamily(
            "uwsgi_supervisor_socket_queue_length",
            "Connections waiting for a worker on a listening socket (the kernel's figure).",
            labels=["role", "address"],
        )
        backlog = GaugeMetricFamily(
            "uwsgi_supervisor_socket_backlog",
            "The listening socket's queue limit.",
            labels=["role", "address"],
        )
        for sock in view.sockets:
            labels = [sock["role"], sock["address"]]
            if sock["queued"] is not None:
                queued.add_metric(labels, float(sock["queued"]))
            backlog.add_metric(labels, float(sock["backlog"]))
        yield queued
        yield backlog


def _num(key: str) -> Callable[[Mapping[str, Any]], float]:
    return lambda w: float(w.get(key, 0) or 0)


def _us(key: str) -> Callable[[Mapping[str, Any]], float]:
    return lambda w: float(w.get(key, 0) or 0) / US


