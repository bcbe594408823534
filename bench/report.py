"""Write RESULTS.md and the charts from a run's results."""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any

from bench import report_under_load as under_load
from bench.config import Settings
from bench.contenders import RELOADERS
from bench.report_kit import (
    fmt,
    hbars,
    is_ours,
    mean,
    save,
    summary,
    table,
    total,
    values,
    verdict,
)

BASELINE = "no reload (uWSGI alone)"


# -- targets -----------------------------------------------------------------------


def targets(res: dict[str, Any]) -> list[tuple[str, str, str, str, str]]:
    """(target, ours, best alternative, ratio, verdict) rows."""
    out = []
    rel = res.get("reload", [])
    for variant in sorted({r["variant"] for r in rel}):
        meds = {n: summary(values(rel, "seconds", contender=n, variant=variant)) for n in RELOADERS}
        ours = {n: s for n, s in meds.items() if is_ours(n) and s}
        alts = {n: s for n, s in meds.items() if not is_ours(n) and s}
        if not ours or not alts:
            continue
        best_o = min(ours, key=lambda n: ours[n][0])
        best_a = min(alts, key=lambda n: alts[n][0])
        ratio = alts[best_a][0] / ours[best_o][0]
        out.append(
            (
                f"New code served ≥ 2x sooner than the best alternative ({variant} app)",
                f"{best_o}: {ours[best_o][0] * 1000:.0f} ms",
                f"{best_a}: {alts[best_a][0] * 1000:.0f} ms",
                f"{ratio:.2f}x sooner",
                verdict(ratio >= 2),
            )
        )
    zd = res.get("zero_downtime", [])
    for variant in sorted({r["variant"] for r in zd}):
        alts = {
            n: sum(values(zd, "failed", contender=n, variant=variant))
            for n in RELOADERS
            if not is_ours(n)
        }
        best_a = min(alts, key=lambda n: alts[n]) if alts else "n/a"
        for mode in ("ours: swap", "ours: chain"):
            failed = values(zd, "failed", contender=mode, variant=variant)
            if not failed:
                continue
            out.append(
                (
                    f"Zero failed requests in every run, {mode[6:]} ({variant} app)",
                    f"{sum(failed)} failed in {len(failed)} runs (worst run {max(failed)})",
                    f"{best_a}: {alts.get(best_a, 0)} failed",
                    "—",
                    verdict(max(failed) == 0),
                )
            )
        worst = values(zd, "latency_max_us", contender="ours: swap", variant=variant)
        if worst:
            alt_worst = {
                n: max(values(zd, "latency_max_us", contender=n, variant=variant) or [0])
                for n in RELOADERS
                if not is_ours(n)
            }
            best = min(alt_worst, key=lambda n: alt_worst[n])
            w = max(worst) / 1000
            b = values(res.get("zero_downtime_baseline", []), "latency_max_us")
            base = f"{max(b) / 1000:.0f} ms" if b else "not measured"
            out.append(
                (
                    f"Worst latency during reloads < 100 ms, swap ({variant} app)",
                    f"{w:.0f} ms (worst of {len(worst)} runs; with no reload: {base})",
                    f"{best}: {alt_worst[best] / 1000:.0f} ms",
                    f"{w * 1000 / alt_worst[best]:.2f}x the alternative's"
                    if alt_worst[best]
                    else "—",
                    verdict(w < 100),
                )
            )
    out += under_load.tcp_targets(res)
    crash = res.get("crash", [])
    if crash:
        o = summary(values(crash, "seconds", contender="ours: graceful"))
        sh = summary(values(crash, "seconds", contender="shell loop"))
        left = sum(values(crash, "leftovers", contender="ours: graceful"))
        if o and sh:
            out.append(
                (
                    "Crash recovery no slower than the shell loop, zero leftovers",
                    f"{o[0] * 1000:.0f} ms, {left} left over, "
                    f"{statistics.median(values(crash, 'failed', contender='ours: graceful')):.0f}"
                    " failed requests per crash",
                    f"shell loop: {sh[0] * 1000:.0f} ms, "
                    f"{statistics.median(values(crash, 'failed', contender='shell loop')):.0f}"
                    " failed per crash",
                    f"{o[0] / sh[0]:.2f}x the time",
                    verdict(o[0] <= sh[0] and left == 0),
                )
            )
    out += under_load.crash_targets(res)
    broken = res.get("broken_push", [])
    if broken:
        o = values(broken, "failed", contender="ours: graceful")
        alts = {
            n: summary(values(broken, "failed", contender=n))
            for n in {r["contender"] for r in broken}
            if not is_ours(n)
        }
        best = min(alts, key=lambda n: alts[n][0]) if alts else "n/a"  # type: ignore[index]
        out.append(
            (
                "No failed request on a broken push",
                f"{sum(o)} failed in {len(o)} runs",
                f"{best}: {alts[best][0]:.0f} failed (median)" if alts else "n/a",
                "—",
                verdict(sum(o) == 0),
            )
        )
    idle = res.get("overhead", [])
    if idle:
        o = summary(values(idle, "ours_rss_mib"))
        s = summary(values(idle, "supervisord_rss_mib"))
        if o and s:
            out.append(
                (
                    "Idle RSS under supervisord's",
                    f"{o[0]:.1f} MiB",
                    f"supervisord: {s[0]:.1f} MiB",
                    f"{o[0] / s[0]:.2f}x",
                    verdict(o[0] < s[0]),
                )
            )
        oc = mean(values(idle, "ours_cpu_exact_pct"))
        sc = mean(values(idle, "supervisord_cpu_exact_pct"))
        ow = mean(values(idle, "ours_wakeups_per_min"))
        sw = mean(values(idle, "supervisord_wakeups_per_min"))
        out.append(
            (
                "Idle CPU at or below supervisord's",
                f"{oc:.4f} % ({ow:.0f} wake-ups/min)",
                f"supervisord: {sc:.4f} % ({sw:.0f} wake-ups/min)",
                f"{oc / sc:.2f}x" if sc else "—",
                verdict(oc <= sc),
            )
        )
    scrapes = [r for r in res.get("metrics", []) if r["what"].startswith("scrape")]
    if scrapes:
        ms = summary(values(scrapes, "ms"))  # both formats: the goal holds for each
        size = max(r["bytes"] for r in scrapes)
        read = summary(values([r for r in res["metrics"] if r["what"] == "stats_read"], "ms"))
        if ms and read:
            out.append(
                (
                    "A /metrics scrape with 64 workers under 50 ms",
                    f"{ms[0]:.1f} ms (max {ms[2]:.1f})",
                    f"stats socket read alone: {read[0]:.1f} ms",
                    f"{ms[0] / read[0]:.2f}x",
                    verdict(ms[2] < 50),
                )
            )
        out.append(
            (
                "A /metrics scrape with 64 workers under 200 KB",
                f"{size / 1024:.0f} KiB",
                "—",
                "—",
                verdict(size < 200 * 1024),
            )
        )
    scale = res.get("scale", [])
    if scale:
        biggest = max(r["files"] for r in scale)
        counts = values(scale, "reloads", files=biggest)
        out.append(
            (
                f"One reload per 5,000-file checkout at {biggest:,} files",
                f"reloads per run: {', '.join(str(c) for c in counts)}",
                "—",
                "—",
                verdict(all(c == 1 for c in counts)),
            )
        )
    return out


# -- charts --------------------------------------------------------------------------


def charts(res: dict[str, Any], out: Path) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    made = []
    cap = (
        "Bar: median; whisker: min–max over runs. Lower is better.\n"
        "Green: uwsgi-supervisor; grey: alternatives."
    )
    rel = res.get("reload", [])
    if rel:
        variants = sorted({r["variant"] for r in rel})
        fig, axes = plt.subplots(
            1, len(variants), figsize=(6.5 * len(variants), 3.8), squeeze=False
        )
        for ax, v in zip(axes[0], variants):
            hbars(
                ax,
                RELOADERS,
                [summary(values(rel, "seconds", contender=n, variant=v)) for n in RELOADERS],
                1000,
                " ms",
                f"1. Save → first new response, ms ({v} app)",
            )
        save(fig, out / "1-reload-latency.png", cap)
        made.append("1-reload-latency.png")
    zd = res.get("zero_downtime", []) + res.get("zero_downtime_baseline", [])
    tcp = res.get("swap_tcp", [])
    if zd or tcp:
        variants = sorted({r["variant"] for r in zd})
        cols = len(variants) + bool(tcp)
        fig, axes = plt.subplots(2, cols, figsize=(6.5 * cols, 6.5), squeeze=False)
        for col, v in enumerate(variants):
            names = [
                n for n in [*RELOADERS, BASELINE] if values(zd, "failed", contender=n, variant=v)
            ]
            failed = [total(values(zd, "failed", contender=n, variant=v)) for n in names]
            hbars(
                axes[0][col],
                names,
                failed,
                1,
                "",
                f"2. Failed requests, all runs together ({v} app)",
            )
            worst = [summary(values(zd, "latency_max_us", contender=n, variant=v)) for n in names]
            hbars(
                axes[1][col],
                names,
                worst,
                1 / 1000,
                " ms",
                f"2. Worst latency of a run, ms ({v} app)",
            )
            axes[1][col].axvline(100, color="#c92a2a", ls="--", lw=1)
        if tcp:
            under_load.tcp_column(axes[0][-1], axes[1][-1], tcp)
        save(fig, out / "2-zero-downtime.png", cap + " Red line: the 100 ms target for swap.")
        made.append("2-zero-downtime.png")
    crash = res.get("crash", [])
    heavy, restart = res.get("crash_wrk", []), res.get("restart", [])
    if crash or heavy or restart:
        fig = plt.figure(figsize=(12, 0.6 + 2.8 * (bool(crash) + bool(heavy) + bool(restart))))
        grid = fig.add_gridspec(bool(crash) + bool(heavy) + bool(restart), 2)
        row = 0
        if crash:
            names = list(dict.fromkeys(r["contender"] for r in crash))
            notes = [
                f"{sum(values(crash, 'failed', contender=n))} failed, "
                f"{sum(values(crash, 'leftovers', contender=n))} left over"
                for n in names
            ]
            hbars(
                fig.add_subplot(grid[row, :]),
                names,
                [summary(values(crash, "seconds", contender=n)) for n in names],
                1000,
                " ms",
                "3. kill -9 of the uWSGI master → new one answers, ms (light load)",
                notes,
            )
            row += 1
        if heavy:
            left, right = fig.add_subplot(grid[row, 0]), fig.add_subplot(grid[row, 1])
            under_load.disruption_row(left, right, heavy, "crash", "3w", in_ms=True)
            row += 1
        if restart:
            left, right = fig.add_subplot(grid[row, 0]), fig.add_subplot(grid[row, 1])
            under_load.disruption_row(left, right, restart, "restart", "3r", in_ms=False)
        save(
            fig,
            out / "3-crash-recovery.png",
            cap + " Notes: totals over all runs. 3w, 3r: under wrk -t2 -c32 through nginx.",
        )
        made.append("3-crash-recovery.png")
    broken = res.get("broken_push", [])
    if broken:
        names = list(dict.fromkeys(r["contender"] for r in broken))
        notes = [
            ("still serving" if all(values(broken, "serving_after", contender=n)) else "site DOWN")
            for n in names
        ]
        fig, ax = plt.subplots(figsize=(7, 3))
        hbars(
            ax,
            names,
            [summary(values(broken, "failed", contender=n)) for n in names],
            1,
            "",
            "4. Failed requests after pushing a syntax error (light load)",
            notes,
        )
        save(fig, out / "4-broken-push.png", cap)
        made.append("4-broken-push.png")
    idle = res.get("overhead", [])
    if idle:
        fig, (a1, a2) = plt.subplots(1, 2, figsize=(11, 2.8))
        hbars(
            a1,
            ["ours: supervisor", "supervisord"],
            [summary(values(idle, "ours_rss_mib")), summary(values(idle, "supervisord_rss_mib"))],
            1,
            " MiB",
            "5. Idle RSS of the supervising process, MiB",
        )
        hbars(
            a2,
            ["ours: supervisor", "supervisord", "py-autoreload (extra uWSGI CPU)"],
            [
                summary(values(idle, "ours_cpu_pct")),
                summary(values(idle, "supervisord_cpu_pct")),
                summary(values(idle, "autoreload_extra_cpu_pct")),
            ],
            1,
            " %",
            "5. Idle CPU, % of one core",
        )
        save(fig, out / "5-idle-overhead.png", cap.replace("over runs", "over time slices"))
        made.append("5-idle-overhead.png")
    scale = res.get("scale", [])
    if scale:
        sizes = sorted({r["files"] for r in scale})
        labels = [f"ours: {s:,} files" for s in sizes]
        notes = [
            f"reloads: {','.join(str(c) for c in values(scale, 'reloads', files=s))}" for s in sizes
        ]
        fig, (a1, a2) = plt.subplots(1, 2, figsize=(11, 2.6))
        hbars(
            a1,
            labels,
            [summary(values(scale, "armed_s", files=s)) for s in sizes],
            1,
            " s",
            "6. Spawn → watcher armed, s",
            notes,
        )
        hbars(
            a2,
            labels,
            [summary(values(scale, "rss_mib", files=s)) for s in sizes],
            1,
            " MiB",
            "6. Supervisor RSS when watching, MiB",
        )
        save(fig, out / "6-scale.png", cap + " Notes: reloads per 5,000-file checkout.")
        made.append("6-scale.png")
    stop = res.get("stop", [])
    if stop:
        labels, stats, notes = [], [], []
        for n in ("ours", "supervisord"):
            for case in ("idle", "in-flight"):
                rows = [r for r in stop if r["contender"] == n and r["case"] == case]
                if not rows:
                    continue
                labels.append(f"{n}: {case}")
                stats.append(summary([r["returned_s"] for r in rows]))
                left = sum(r["leftovers"] for r in rows)
                note = f"{left} uWSGI left" if left else "all gone"
                if case == "in-flight":
                    done = sum(1 for r in rows if r["inflight_completed"])
                    note += f", request completed {done}/{len(rows)}"
                notes.append(note)
        fig, ax = plt.subplots(figsize=(8, 2.8))
        hbars(ax, labels, stats, 1, " s", "7. Stop: signal → stop returned, s", notes)
        save(fig, out / "7-stop.png", cap)
        made.append("7-stop.png")
    plt.close("all")
    return made


# -- markdown ------------------------------------------------------------------------


def _sections(res: dict[str, Any], cfg: Settings) -> list[str]:
    parts = []
    rel = res.get("reload", [])
    if rel:
        rows = []
        for v in sorted({r["variant"] for r in rel}):
            alt_best = min(
                (summary(values(rel, "seconds", contender=n, variant=v)) or (1e9,))[0]
                for n in RELOADERS
                if not is_ours(n)
            )
            for n in RELOADERS:
                s = summary(values(rel, "seconds", contender=n, variant=v))
                never = sum(1 for x in values(rel, "seconds", contender=n, variant=v) if x is None)
                ratio = f"{alt_best / s[0]:.2f}x" if s and is_ours(n) else ""
                rows.append(
                    [
                        v,
                        n,
                        fmt(s, 1000, " ms"),
                        str(s[3] if s else 0) + (f" (+{never} never)" if never else ""),
                        ratio,
                    ]
                )
        parts.append(
            "## 1. Reload latency\n\nFile saved (in place) → first response with the new "
            "version marker, "
            "polled through nginx in a tight loop. touch-reload gets its file touched right "
            "after the save; "
            "inotify+r is a 40-line watchdog script writing `r` to the master FIFO (no "
            "debounce, no import "
            "check). Before each save the benchmark waits until the file's whole-second mtime "
            "can change (touch-reload and py-autoreload compare whole seconds) and, for "
            "py-autoreload, 1.5 s after its start or reload (its reloader records the mtimes it "
            "first sees about a second after the workers start: an earlier save goes unseen).\n\n"
            + table(
                ["app", "contender", "median (min–max)", "runs", "best alternative ÷ this"], rows
            )
            + "\n![reload latency](charts/1-reload-latency.png)\n"
        )
    zd = res.get("zero_downtime", []) + res.get("zero_downtime_baseline", [])
    if zd:
        rows = []
        for v in sorted({r["variant"] for r in zd}):
            for n in [*RELOADERS, BASELINE]:
                sel = [r for r in zd if r["contender"] == n and r["variant"] == v]
                if not sel:
                    continue
                rows.append(
                    [
                        v,
                        n,
                        str(len(sel)),
                        ", ".join(str(r["failed"]) for r in sel),
                        fmt(summary([r["latency_max_us"] for r in sel]), 1 / 1000, " ms"),
                        fmt(summary([r["latency_p99_us"] for r in sel]), 1 / 1000, " ms"),
                        f"{statistics.median(r['requests'] for r in sel):.0f}",
                        str(sum(1 for r in sel if r.get("stale"))),
                    ]
                )
        parts.append(
            f"## 2. Zero downtime\n\n`wrk -t2 -c32 -d{cfg.zd_duration}s` through nginx while "
            "the app is "
            f"saved {cfg.zd_reloads} time(s) (evenly spread over the run). Failed = non-2xx + "
            "socket errors "
            "(connect, read, write, timeout; wrk's timeout is raised to 30 s so a stalled "
            "request counts "
            'as latency, not as an error). "Last save unseen": runs after which the last version '
            "saved was still not served 15 s later (then saved again to go on). The last row is "
            "the same wrk run with no save at all: the worst latency this 2-core machine shows "
            "anyway while wrk, nginx and uWSGI share it.\n\n"
            + table(
                [
                    "app",
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
    if zd or res.get("swap_tcp"):
        parts.append(
            under_load.tcp_section(res, cfg) + "\n![zero downtime](charts/2-zero-downtime.png)\n"
        )
    crash = res.get("crash", [])
    if crash:
        rows = []
        for n in dict.fromkeys(r["contender"] for r in crash):
            rows.append(
                [
                    n,
                    fmt(summary(values(crash, "seconds", contender=n)), 1000, " ms"),
                    ", ".join(str(x) for x in values(crash, "failed", contender=n)),
                    str(sum(values(crash, "leftovers", contender=n))),
                    str(len(values(crash, "seconds", contender=n))),
                ]
            )
        parts.append(
            "## 3. Crash recovery\n\nEach contender started afresh for each `kill -9` of the "
            "uWSGI master while 2 threads send light "
            "load through "
            "nginx → first response from a process of the new instance. Leftovers: processes "
            "of the old "
            "instance (the master's children recorded before the kill) still alive "
            f"{cfg.settle:g} s after recovery. "
            "supervisord runs the same uWSGI command with `autorestart=true`; the shell loop is "
            "`while true; do uwsgi ...; done` (bounded to 1,000 starts here). The last row kills "
            "one supervised instance again and again, a few seconds apart: each after more than "
            "`restart.reset_after` (1 s) of serving, so the supervisor's backoff (100 ms, "
            "doubling, for crashes within it) does not apply.\n\n"
            + table(
                [
                    "contender",
                    "recovery, median (min–max)",
                    "failed per run",
                    "leftovers (total)",
                    "runs",
                ],
                rows,
            )
        )
    if crash or res.get("crash_wrk") or res.get("restart"):
        parts.append(
            under_load.crash_sections(res, cfg)
            + "\n![crash recovery](charts/3-crash-recovery.png)\n"
        )
    broken = res.get("broken_push", [])
    if broken:
        rows = []
        for n in dict.fromkeys(r["contender"] for r in broken):
            sel = [r for r in broken if r["contender"] == n]
            rows.append(
                [
                    n,
                    ", ".join(f"{r['failed']}/{r['requests']}" for r in sel),
                    ", ".join("serving" if r["serving_after"] else "down" for r in sel),
                ]
            )
        parts.append(
            "## 4. Broken push\n\nA syntax error saved into the app under light load; failed "
            "requests in "
            f"the {cfg.broken_window:g} s after the save, and whether the site still answers "
            "200 after. "
            "All contenders run uWSGI with `need-app`, as the supervisor does: without it "
            "uWSGI 2.0 stays "
            "up with no app and answers 500 instead.\n\n"
            + table(["contender", "failed/requests per run", "after the window"], rows)
            + "\n![broken push](charts/4-broken-push.png)\n"
        )
    bad = res.get("bad_deploys", [])
    if bad:
        rows = [
            [
                r["contender"],
                r["kind"],
                f"{r['failed']}/{r['requests']}",
                "serving" if r["serving_after"] else "DOWN",
                "-" if r["last_failure_s"] is None else f"{r['last_failure_s']:.1f} s",
            ]
            for r in bad
        ]
        parts.append(
            "## 4b. Bad deploys\n\nPushes that import fine and fail on request, under "
            "`wrk -t2 -c32` through nginx: an index view that raises, and code that fails "
            "every request from 2 s after it loaded. Failed of all requests wrk sent (from "
            f"0.5 s before the save to {cfg.bad_window:g} s after it), whether the site "
            "answers 200 after, and when the last failed request ended (for a site that "
            "recovered; seen by a second, light client). `ours: swap` "
            "health-checks the new master on its private socket before it takes traffic and "
            "rolls back within its 10 s bake; `ours: graceful` checks too, but cannot roll "
            "back.\n\n"
            + table(
                ["contender", "push", "failed/requests", "after the window", "last failure"],
                rows,
            )
            + "\n"
        )
    idle = res.get("overhead", [])
    if idle:
        keys = [
            ("ours_rss_mib", "uwsgi-supervisor process RSS", " MiB", 1),
            ("supervisord_rss_mib", "supervisord process RSS", " MiB", 1),
            ("ours_cpu_pct", "uwsgi-supervisor process CPU", " %", 3),
            ("supervisord_cpu_pct", "supervisord process CPU", " %", 3),
            ("ours_wakeups_per_min", "uwsgi-supervisor wake-ups per minute", "", 0),
            ("supervisord_wakeups_per_min", "supervisord wake-ups per minute", "", 0),
            ("uwsgi_auto_cpu_pct", "uWSGI with py-autoreload=1, all processes", " %", 3),
            ("uwsgi_plain_cpu_pct", "uWSGI alone, all processes", " %", 3),
            ("uwsgi_auto_master_cpu_pct", "uWSGI master with py-autoreload=1", " %", 3),
            ("uwsgi_plain_master_cpu_pct", "uWSGI master alone", " %", 3),
            ("autoreload_extra_cpu_pct", "extra CPU py-autoreload burns", " %", 3),
        ]
        rows = [[label, fmt(summary(values(idle, k)), 1, unit, nd)] for k, label, unit, nd in keys]
        whole = (("ours", "uwsgi-supervisor"), ("supervisord", "supervisord"))
        for k, label in whole:
            exact = mean(values(idle, f"{k}_cpu_exact_pct"))
            rows.append([f"{label} process CPU, whole window, exact", f"{exact:.4f} %"])
        parts.append(
            f"## 5. Idle overhead\n\nThe four run idle side by side for {cfg.idle_seconds:g} "
            "s, sampled in "
            f"{cfg.idle_slices} slices (CPU in % of one core). Our supervisor watches a tree of "
            f"{cfg.tree_files:,} files (inotify); supervisord supervises the same uWSGI "
            "command. Wake-ups are the voluntary context switches of all the "
            "process's threads (each is a sleep that ended). The CPU rows per "
            "slice count 10-ms ticks (/proc/PID/stat), too coarse to compare "
            "near zero; the exact rows sum the scheduler's nanoseconds "
            "(/proc/PID/task/*/schedstat) of every thread over the whole window, "
            "and are the ones compared.\n\n"
            + table(["what", "median (min–max) over slices"], rows)
            + "\n![idle overhead](charts/5-idle-overhead.png)\n"
        )
    scrapes = [r for r in res.get("metrics", []) if r["what"] == "scrape"]
    if scrapes:
        om = [r for r in res["metrics"] if r["what"] == "scrape_openmetrics"]
        reads = [r for r in res["metrics"] if r["what"] == "stats_read"]
        parts.append(
            "## 8. Metrics scrape\n\n"
            f"`GET /metrics` of our supervisor with 64 uWSGI workers, {len(scrapes)} times on "
            "fresh connections, answered from the loop's last stats sample. The reference is "
            "one read of the stats socket, which a sidecar exporter does on every scrape before "
            "it formats anything.\n\n"
            + table(
                ["what", "median (min–max)"],
                [
                    ["scrape, text format, ms", fmt(summary(values(scrapes, "ms")), 1, " ms", 1)],
                    ["scrape, text format, KiB",
                     fmt(summary(values(scrapes, "bytes")), 1 / 1024, " KiB", 0)],
                    ["scrape with Prometheus's Accept header (served as text), ms",
                     fmt(summary(values(om, "ms")), 1, " ms", 1)],
                    ["scrape with Prometheus's Accept header, KiB",
                     fmt(summary(values(om, "bytes")), 1 / 1024, " KiB", 0)],
                    ["stats socket read alone, ms", fmt(summary(values(reads, "ms")), 1, " ms", 1)],
                ],
            )
        )
    scale = res.get("scale", [])
    if scale:
        rows = []
        for s in sorted({r["files"] for r in scale}):
            sel = [r for r in scale if r["files"] == s]
            rows.append(
                [
                    f"{s:,}",
                    fmt(summary([r["armed_s"] for r in sel]), 1, " s", 2),
                    fmt(summary([r["rss_mib"] for r in sel]), 1, " MiB", 1),
                    fmt(summary([r["checkout_s"] for r in sel]), 1, " s", 2),
                    fmt(summary([r["reload_done_s"] for r in sel]), 1, " s", 2),
                    ", ".join(str(r["reloads"]) for r in sel),
                    str(sel[0]["backend"]),
                ]
            )
        parts.append(
            "## 6. Scale\n\nTrees of small modules, 100 per directory (inotify watches are "
            "per directory; "
            f"`fs.inotify.max_user_watches` = {scale[0]['max_user_watches']:,} here, left as "
            "it is). Armed: "
            "supervisor spawned → its log says `watching ... for code pushes`. Then a checkout "
            "rewrites "
            f"{cfg.checkout_files:,} files spread over the tree plus the app's version marker.\n\n"
            + table(
                [
                    "files",
                    "armed, median (min–max)",
                    "RSS when watching",
                    "checkout took",
                    "checkout end → new generation running",
                    "reloads per checkout",
                    "backend",
                ],
                rows,
            )
            + "\n![scale](charts/6-scale.png)\n"
        )
    stop = res.get("stop", [])
    if stop:
        rows = []
        for n in ("ours", "supervisord"):
            for case in ("idle", "in-flight"):
                sel = [r for r in stop if r["contender"] == n and r["case"] == case]
                if not sel:
                    continue
                rows.append(
                    [
                        n,
                        case,
                        fmt(summary([r["returned_s"] for r in sel]), 1, " s", 2),
                        fmt(summary([r["gone_s"] for r in sel]), 1, " s", 2),
                        ", ".join(str(r["leftovers"]) for r in sel),
                        ""
                        if case == "idle"
                        else f"{sum(1 for r in sel if r['inflight_completed'])}/{len(sel)}",
                    ]
                )
        sw = cfg.supervisord_stopwaitsecs
        parts.append(
            "## 7. Stop\n\nOurs: SIGTERM to the supervisor (what systemd sends). supervisord: "
            "`supervisorctl stop` with its defaults (SIGTERM, which uWSGI 2.0 takes as a "
            "brutal reload, "
            f"then SIGKILL after stopwaitsecs = {sw if sw is not None else 10} s). In flight: "
            "`/slow?s=2` "
            f"through nginx, started 0.3 s before the stop. Leftovers: uWSGI processes still alive "
            "3 s after the stop returned (then killed by the benchmark).\n\n"
            + table(
                [
                    "contender",
                    "case",
                    "stop returned, median (min–max)",
                    "all uWSGI gone",
                    "uWSGI left per run",
                    "in-flight request completed",
                ],
                rows,
            )
            + "\n![stop](charts/7-stop.png)\n"
        )
    return parts


NOTES = """## How to read this

- Our reload times include, by design, the watcher's debounce (200 ms of quiet after the
  last change) and the preflight import of the new code in a separate process (the app's
  import time): that is the price of never reloading onto a half-written or broken push.
  The alternatives reload at once, onto whatever is on disk.
- "graceful" re-executes uWSGI in place: requests wait in the listen queue meanwhile (a
  stall of about a second plus the app's import, and now and then one failed request, for
  ours and for the plain-uWSGI reloaders alike, which all end in the same `r`). "chain"
  replaces one worker at a time; "swap" starts a second master on the same listening
  socket (the supervisor holds it and every master inherits it) and sends the old one
  `q` once every new worker serves.
- Everything shares one 2-core machine: wrk's two threads, nginx, 4 uWSGI workers and,
  during a swap, a second master importing the app. The no-reload row of scenario 2 is the
  worst latency the machine shows with no reload at all.
- CPU times come from /proc in 10 ms ticks: over a 10 s slice, 0.1 % is one tick.
  py-autoreload's polling runs in the workers, not in the master.
- Rerun scenarios with `.venv/bin/python -m bench --only 3,3w` (their rows replace the old
  ones in `bench/out/full/results.json`, and this file is rewritten from it); this file
  and its charts are replaced only when that results.json holds every scenario.
"""


def _loads(res: dict[str, Any]) -> str:
    """The machine's load when each scenario began, where the run recorded it."""
    load = res.get("load", {})
    ran = list(res.get("durations", {}))
    got = [f"{key} {load[key]:.1f}" for key in ran if key in load]
    if not got:
        return "not recorded"
    missing = [key for key in ran if key not in load]
    return (
        ", ".join(got)
        + f" (on {res['machine']['nproc']} CPUs)"
        + (f"; not recorded for {', '.join(missing)}" if missing else "")
    )


def write(res: dict[str, Any], cfg: Settings, out: Path) -> Path:
    """Write out/RESULTS.md and out/charts/*.png; return the markdown's path."""
    charts(res, out / "charts")
    m, v = res["machine"], res["versions"]
    mode = "quick smoke run (numbers not meaningful)" if cfg.quick else "full run"
    head = [
        "# Benchmarks: uwsgi-supervisor against the alternatives\n",
        f"Made by `scripts/bench` ({mode}, {res.get('total_seconds', 0) / 60:.1f} minutes). Every "
        "contender runs the same Flask app under uWSGI with the same options (master, "
        "need-app, master "
        "FIFO, stats, 4 workers, a unix socket; a loopback TCP socket in 2t) behind Debian's "
        "nginx on 127.0.0.1, one at a time; "
        "tables give the median and (min–max) over repeated runs.\n",
        "## Machine and versions\n",
        table(
            ["", ""],
            [
                ["CPU", f"{m['cpu']} × {m['nproc']} (nproc)"],
                ["RAM", f"{m['ram_gib']} GiB"],
                ["kernel", m["kernel"]],
                ["fs.inotify.max_user_watches", f"{m['max_user_watches']:,}"],
                ["load average (1 min) as each scenario began", _loads(res)],
            ]
            + [[k, str(val).splitlines()[0] if val else ""] for k, val in v.items()],
        ),
        "## Targets\n",
        "Each against the best alternative in the same run.\n",
        table(
            ["target", "uwsgi-supervisor", "best alternative", "ratio", "verdict"],
            [list(t) for t in targets(res)],
        ),
    ]
    errors = [
        f"## Scenario {k[: -len('_error')]} failed\n\n```\n{v[-2000:]}\n```\n"
        for k, v in res.items()
        if k.endswith("_error")
    ]
    text = "\n".join(head + [""] + _sections(res, cfg) + errors + [NOTES])
    path = out / "RESULTS.md"
    path.write_text(text)
    return path
