"""The report's parts for scenarios 2t, 3w and 3r: disruptions under `wrk -t2 -c32`.

Their targets, their panels in charts 2 and 3 (drawn into axes the main
report lays out) and their sections of RESULTS.md.
"""

from __future__ import annotations

import statistics
from typing import Any

from bench.common import PROCESSES
from bench.config import Settings
from bench.contenders import SOCKET_UNIT
from bench.report_kit import Row, fmt, hbars, is_ours, summary, table, total, values, verdict
from bench.s2_zero_downtime import TCP_RELOADERS
from bench.s3w_crash_under_wrk import IN_FLIGHT, THREADS

Target = tuple[str, str, str, str, str]
CHART_LABELS = {SOCKET_UNIT: "ours + socket unit\n(harness holds it)"}


def _names(rows: list[Row]) -> list[str]:
    return list(dict.fromkeys(r["contender"] for r in rows))


def _nums(rows: list[Row], key: str, **where: Any) -> list[float]:
    """`values` without the rows that lack `key`."""
    return [float(x) for x in values(rows, key, **where) if x is not None]


def _median(rows: list[Row], key: str, **where: Any) -> float:
    xs = _nums(rows, key, **where)
    return float(statistics.median(xs)) if xs else float("nan")


def _best_alternative(rows: list[Row], key: str) -> str:
    alts = [n for n in _names(rows) if not is_ours(n)]
    return min(alts, key=lambda n: _median(rows, key, contender=n)) if alts else ""


# -- targets -----------------------------------------------------------------------


def tcp_targets(res: dict[str, Any]) -> list[Target]:
    tcp = res.get("swap_tcp", [])
    failed = _nums(tcp, "failed", contender="ours: swap")
    if not failed:
        return []
    alts = {n: sum(_nums(tcp, "failed", contender=n)) for n in _names(tcp) if not is_ours(n)}
    best = min(alts, key=lambda n: alts[n]) if alts else ""
    worst = max(_nums(tcp, "latency_max_us", contender="ours: swap")) / 1000
    alt_worst = {n: max(_nums(tcp, "latency_max_us", contender=n)) / 1000 for n in alts}
    best_w = min(alt_worst, key=lambda n: alt_worst[n]) if alt_worst else ""
    base = _nums(res.get("zero_downtime_baseline", []), "latency_max_us")
    no_reload = f"{max(base) / 1000:.0f} ms" if base else "not measured"
    return [
        (
            "Zero failed requests in every run, swap over a TCP socket (fast app)",
            f"{sum(failed):.0f} failed in {len(failed)} runs (worst run {max(failed):.0f})",
            f"{best}: {alts[best]:.0f} failed" if best else "n/a",
            "—",
            verdict(max(failed) == 0),
        ),
        (
            "Worst latency during reloads < 100 ms, swap over a TCP socket (fast app)",
            f"{worst:.0f} ms (worst of {len(failed)} runs; with no reload: {no_reload})",
            f"{best_w}: {alt_worst[best_w]:.0f} ms" if best_w else "n/a",
            f"{worst / alt_worst[best_w]:.2f}x the alternative's" if best_w else "—",
            verdict(worst < 100),
        ),
    ]


def crash_targets(res: dict[str, Any]) -> list[Target]:
    out = []
    heavy = res.get("crash_wrk", [])
    failed = _nums(heavy, "failed", contender="ours")
    if failed:
        best = _best_alternative(heavy, "failed")
        out.append(
            (
                f"kill -9 under wrk -c32: failed per crash ≤ processes × threads ({IN_FLIGHT})",
                f"{statistics.median(failed):.0f} per crash (worst {max(failed):.0f} of "
                f"{len(failed)} crashes), serving again in "
                f"{_median(heavy, 'seconds', contender='ours') * 1000:.0f} ms",
                f"{best}: {_median(heavy, 'failed', contender=best):.0f} per crash, "
                f"{_median(heavy, 'seconds', contender=best) * 1000:.0f} ms"
                if best
                else "n/a",
                "—",
                verdict(max(failed) <= IN_FLIGHT),
            )
        )
    restart = res.get("restart", [])
    failed = _nums(restart, "failed", contender=SOCKET_UNIT)
    if failed:
        best = _best_alternative(restart, "failed")
        bare = _nums(restart, "failed", contender="ours, no socket unit")
        out.append(
            (
                "Restart of the supervisor under wrk -c32 with a socket unit: 0 failed",
                f"{sum(failed):.0f} failed in {len(failed)} restarts, serving again in "
                f"{_median(restart, 'seconds', contender=SOCKET_UNIT):.1f} s"
                + (
                    f" (no socket unit: {statistics.median(bare):.0f} failed per restart)"
                    if bare
                    else ""
                ),
                f"{best}: {_median(restart, 'failed', contender=best):.0f} per restart, "
                f"{_median(restart, 'seconds', contender=best):.1f} s"
                if best
                else "n/a",
                "—",
                verdict(sum(failed) == 0),
            )
        )
    return out


# -- charts ------------------------------------------------------------------------


def _label(name: str) -> str:
    return CHART_LABELS.get(name, name)


def tcp_column(failed_ax: Any, worst_ax: Any, tcp: list[Row]) -> None:
    """Chart 2's last column: the swap-over-TCP runs."""
    names = [n for n in TCP_RELOADERS if values(tcp, "failed", contender=n)]
    hbars(
        failed_ax,
        names,
        [total(values(tcp, "failed", contender=n)) for n in names],
        1,
        "",
        "2t. Failed requests, all runs (TCP socket)",
    )
    hbars(
        worst_ax,
        names,
        [summary(values(tcp, "latency_max_us", contender=n)) for n in names],
        1 / 1000,
        " ms",
        "2t. Worst latency of a run, ms (TCP socket)",
    )
    worst_ax.axvline(100, color="#c92a2a", ls="--", lw=1)
    worst_ax.set_xlim(0, max(worst_ax.get_xlim()[1], 110))  # the target line in view


def disruption_row(
    failed_ax: Any, back_ax: Any, rows: list[Row], what: str, code: str, in_ms: bool
) -> None:
    """Chart 3's row for 3w or 3r: failed requests and time to a new instance's answer."""
    names = _names(rows)
    labels = [_label(n) for n in names]
    hbars(
        failed_ax,
        labels,
        [summary(values(rows, "failed", contender=n)) for n in names],
        1,
        "",
        f"{code}. Failed requests per {what} (wrk -c32)",
    )
    hbars(
        back_ax,
        labels,
        [summary(values(rows, "seconds", contender=n)) for n in names],
        1000 if in_ms else 1,
        " ms" if in_ms else " s",
        f"{code}. {what.capitalize()} → a new process answers, {'ms' if in_ms else 's'}",
    )


# -- markdown ----------------------------------------------------------------------


def tcp_section(res: dict[str, Any], cfg: Settings) -> str:
    tcp = res.get("swap_tcp", [])
    if not tcp:
        return ""
    rows = []
    for n in _names(tcp):
        sel = [r for r in tcp if r["contender"] == n]
        rows.append(
            [
                n,
                str(len(sel)),
                ", ".join(str(r["failed"]) for r in sel),
                fmt(summary([r["latency_max_us"] for r in sel]), 1 / 1000, " ms"),
                fmt(summary([r["latency_p99_us"] for r in sel]), 1 / 1000, " ms"),
                f"{statistics.median(r['requests'] for r in sel):.0f}",
                str(sum(1 for r in sel if r.get("stale"))),
            ]
        )
    return (
        "### 2t. Over a loopback TCP socket\n\nThe same wrk runs and saves (fast app) with "
        "the app socket on `127.0.0.1:PORT` instead of a unix socket. Ours: `uwsgi.socket: "
        "127.0.0.1:PORT` and `watch.reload: swap`; the supervisor holds the TCP socket, the "
        "new master inherits it, and the old one gets `q` as soon as the new one serves. "
        "inotify+r and touch-reload run uWSGI with `--socket 127.0.0.1:PORT`; their reload is "
        "uWSGI's `r`, which keeps the socket across its re-exec, as over a unix socket "
        "(py-autoreload ends in the same `r` and is left out).\n\n"
        + table(
            [
                "contender",
                "runs",
                "failed per run",
                "worst latency, median (min–max)",
                "p99 latency",
                "requests per run",
                "last save unseen",
            ],
            rows,
        )
    )


def _disruption_table(rows: list[Row], what: str, in_ms: bool) -> str:
    out = []
    for n in _names(rows):
        sel = [r for r in rows if r["contender"] == n]
        never = sum(1 for r in sel if r["seconds"] is None)
        out.append(
            [
                n,
                ", ".join(str(r["failed"]) for r in sel),
                (
                    fmt(summary([r["seconds"] for r in sel]), 1000, " ms")
                    if in_ms
                    else fmt(summary([r["seconds"] for r in sel]), 1, " s", 2)
                )
                + (f" ({never} never)" if never else ""),
                fmt(summary([r["latency_max_us"] for r in sel]), 1 / 1000, " ms"),
                f"{statistics.median(r['requests'] for r in sel):.0f}",
                str(sum(r["leftovers"] for r in sel)),
            ]
        )
    return table(
        [
            "contender",
            f"failed per {what}",
            f"{what} → new process answers, median (min–max)",
            "worst latency of a run",
            "requests per run",
            "leftovers (total)",
        ],
        out,
    )


def crash_sections(res: dict[str, Any], cfg: Settings) -> str:
    parts = []
    heavy = res.get("crash_wrk", [])
    if heavy:
        parts.append(
            "### 3w. kill -9 under `wrk -t2 -c32`\n\nThe same crash under scenario 2's load "
            "through nginx. One instance per contender, its uWSGI master killed "
            f"{cfg.crash_reps} time(s), with wrk running {cfg.wrk_lead:g} s before each "
            "crash; the crashes are seconds apart, more than the supervisor's "
            "`restart.reset_after` (1 s), so each is a first crash for its backoff. wrk stops "
            f"{cfg.wrk_tail:g} s after the first response from a process of the new master, "
            "and every failure it counted in that run is charged to the crash. The supervisor "
            "holds the app socket, so connections wait in its queue while no master runs; "
            f"what a crash can lose is what the workers had in flight, at most processes × "
            f"threads = {PROCESSES} × {THREADS} = {IN_FLIGHT}. Under supervisord and the shell "
            "loop, uWSGI binds its own socket: it closes when the old master's processes are "
            "gone, the connections queued in it are reset, and connections are refused until "
            "a new uWSGI binds the path again (the shell loop starts one at once, supervisord "
            "about a second later).\n\n" + _disruption_table(heavy, "crash", in_ms=True)
        )
    restart = res.get("restart", [])
    if restart:
        sw = cfg.supervisord_stopwaitsecs
        parts.append(
            "### 3r. Restart of the supervising process under `wrk -t2 -c32`\n\nWhat an "
            "upgrade of the supervisor does, under the same load, "
            f"{cfg.restart_reps} time(s) per contender on one instance. Timed from the "
            "restart's first signal to the first response from a process of the new "
            "instance.\n\n"
            f"- *{SOCKET_UNIT}*: SIGTERM to `uwsgi-supervisor run` (systemd's stop; it stops "
            "uWSGI with `q`), wait for it to exit, start it again. No systemd here: the "
            "benchmark process bound the app socket once and starts each supervisor as "
            "systemd starts the service of a socket unit (the socket on fd 3, `LISTEN_FDS=1`, "
            "`LISTEN_PID` = the supervisor's pid), so the socket stays open across the "
            "restart.\n"
            "- *ours, no socket unit*: the same SIGTERM and start; the socket closes with "
            "the supervisor and is bound anew.\n"
            "- *supervisord*: a restart of supervisord itself, as a package upgrade does "
            "(`systemctl restart supervisor`): SIGTERM, on which it stops the program with its "
            "defaults (SIGTERM, which uWSGI 2.0 takes as a brutal reload, then SIGKILL after "
            f"stopwaitsecs = {sw if sw is not None else 10} s), exits, and starts again.\n"
            "- *shell loop*: Ctrl-C at its terminal (SIGINT to the group; uWSGI stops at "
            "once), then started again.\n\n" + _disruption_table(restart, "restart", in_ms=False)
        )
    return "\n".join(parts)
