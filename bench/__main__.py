"""Run the benchmarks: `python -m bench [--quick] [--out DIR] [--only 1,3]` (see scripts/bench)."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
import traceback
from pathlib import Path
from typing import Any, Callable

from bench import (
    machine,
    report,
    s1_reload,
    s2_zero_downtime,
    s3_crash,
    s3r_restart,
    s3w_crash_under_wrk,
    s4_broken_push,
    s4b_bad_deploys,
    s5_overhead,
    s6_scale,
    s7_stop,
    s8_metrics,
)
from bench.alternatives import SUPERVISORD_VENV, Supervisord
from bench.common import REPO
from bench.config import FULL, QUICK, Settings
from tests.kit.nginx import NGINX

SCENARIOS: dict[str, tuple[str, Callable[[Settings, Any], list[dict[str, Any]]]]] = {
    "1": ("reload", s1_reload.run),
    "2": ("zero_downtime", s2_zero_downtime.run),
    "2b": ("zero_downtime_baseline", s2_zero_downtime.run_baseline),
    "2t": ("swap_tcp", s2_zero_downtime.run_tcp),
    "3": ("crash", s3_crash.run),
    "3w": ("crash_wrk", s3w_crash_under_wrk.run),
    "3r": ("restart", s3r_restart.run),
    "4": ("broken_push", s4_broken_push.run),
    "4b": ("bad_deploys", s4b_bad_deploys.run),
    "5": ("overhead", s5_overhead.run),
    "6": ("scale", s6_scale.run),
    "7": ("stop", s7_stop.run),
    "8": ("metrics", s8_metrics.run),
}


def missing_tools() -> list[str]:
    missing = []
    if shutil.which("wrk") is None:
        missing.append("wrk (apt-get install wrk)")
    if not NGINX.exists():
        missing.append("nginx (apt-get install nginx-light)")
    if not Supervisord.available():
        missing.append(f"supervisord in {SUPERVISORD_VENV}")
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        missing.append("matplotlib (pip install -e '.[bench]')")
    return missing


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument(
        "--quick", action="store_true", help="smoke mode: one short run of each scenario"
    )
    parser.add_argument(
        "--out",
        type=Path,
        help="where results.json, RESULTS.md and charts/ go "
        "(default: bench/out/quick, or bench/out/full plus RESULTS.md and charts/ in bench/)",
    )
    parser.add_argument(
        "--report-only",
        action="store_true",
        help="rewrite RESULTS.md and charts from the results.json in the out dir",
    )
    parser.add_argument(
        "--only",
        default="",
        help="comma-separated scenarios (results merged): "
        + ", ".join(f"{n} {key}" for n, (key, _) in SCENARIOS.items()),
    )
    args = parser.parse_args(argv)
    if args.report_only:
        return _report(args)
    missing = missing_tools()
    if missing:
        print(
            "bench: missing " + "; ".join(missing) + ". Run scripts/bench, which installs them.",
            file=sys.stderr,
        )
        return 69  # EX_UNAVAILABLE
    cfg = QUICK if args.quick else FULL
    out = args.out or REPO / "bench" / "out" / ("quick" if args.quick else "full")
    out.mkdir(parents=True, exist_ok=True)
    chosen = [s for s in args.only.split(",") if s] or list(SCENARIOS)
    unknown = [s for s in chosen if s not in SCENARIOS]
    if unknown:
        parser.error(f"unknown scenario {', '.join(unknown)}; known: {', '.join(SCENARIOS)}")
    results_file = out / "results.json"
    results: dict[str, Any] = {}
    if args.only and results_file.exists():
        results = json.loads(results_file.read_text())
    results.update(machine.collect())
    results["quick"] = cfg.quick
    results.setdefault("durations", {})
    # Other work on the machine slows every contender: the report shows how busy it was.
    results.setdefault("load", {})
    started = time.monotonic()

    def log(msg: str) -> None:
        print(f"[{time.monotonic() - started:7.1f}s] {msg}", flush=True)

    for number in chosen:
        key, run = SCENARIOS[number]
        t = time.monotonic()
        results["load"][key] = os.getloadavg()[0]
        log(f"scenario {number}: {key} (load average {results['load'][key]:.2f})")
        try:
            results[key] = run(cfg, log)
            results.pop(f"{key}_error", None)
        except Exception:  # one broken scenario must not lose the others' results
            results[f"{key}_error"] = traceback.format_exc()
            log(f"scenario {number} FAILED:\n{results[f'{key}_error']}")
        results["durations"][key] = time.monotonic() - t
        results_file.write_text(json.dumps(results, indent=1))
    results["total_seconds"] = sum(results["durations"].values())
    results_file.write_text(json.dumps(results, indent=1))
    log(
        f"done in {time.monotonic() - started:.0f} s: "
        f"{_publish(results, cfg, out, args.out is None)}"
    )
    failed = [k for k in results if k.endswith("_error")]
    if failed:
        log("scenarios that failed: " + ", ".join(k[: -len("_error")] for k in failed))
        return 1
    return 0


def _publish(results: dict[str, Any], cfg: Settings, out: Path, default_out: bool) -> Path:
    """Write the report into `out`; a full run to the default place also updates bench/.

    Only results that cover every scenario replace bench/RESULTS.md and its
    charts: an `--only` run with no earlier results.json to merge into would
    otherwise drop every other scenario from the committed report.
    """
    written = report.write(results, cfg, out)
    missing = [
        key for key, _ in SCENARIOS.values() if key not in results and f"{key}_error" not in results
    ]
    if default_out and not cfg.quick and missing:
        print(
            f"bench: {out / 'results.json'} has no results for {', '.join(missing)}; "
            "bench/RESULTS.md left as it is (run those with --only to complete it)",
            file=sys.stderr,
        )
    elif default_out and not cfg.quick:
        shutil.copyfile(written, REPO / "bench" / "RESULTS.md")
        shutil.rmtree(REPO / "bench" / "charts", ignore_errors=True)
        shutil.copytree(out / "charts", REPO / "bench" / "charts")
        written = REPO / "bench" / "RESULTS.md"
    return written


def _report(args: argparse.Namespace) -> int:
    cfg = QUICK if args.quick else FULL
    out = args.out or REPO / "bench" / "out" / ("quick" if args.quick else "full")
    results = json.loads((out / "results.json").read_text())
    print(_publish(results, cfg, out, args.out is None))
    return 0


if __name__ == "__main__":
    sys.exit(main())
