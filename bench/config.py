"""How much of each scenario to run: the full benchmark or the quick smoke run."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional


@dataclass(frozen=True)
class Settings:
    quick: bool
    reload_reps: int  # scenario 1: edits per contender and app variant
    variants: tuple[str, ...]  # app variants for scenarios 1 and 2
    zd_reps: int  # scenario 2: wrk runs per contender and variant
    zd_duration: int  # seconds of wrk per run
    zd_reloads: int  # saves during each wrk run
    crash_reps: int  # scenario 3: fresh instances per contender; 3w: crashes of one instance
    restart_reps: int  # scenario 3r: restarts of the supervising process per contender
    wrk_lead: float  # 3w, 3r: seconds of wrk before the disruption
    wrk_tail: float  # 3w, 3r: seconds of wrk after the first new response
    broken_reps: int
    broken_window: float  # seconds watched after a broken push
    bad_window: float  # scenario 4b: seconds watched after a push that fails on request
    idle_seconds: float  # scenario 5: the idle window, cut in idle_slices
    idle_slices: int
    tree_files: int  # scenario 5's watched tree
    scale_sizes: tuple[int, ...]
    scale_reps: int
    checkout_files: int
    stop_reps: int
    supervisord_stopwaitsecs: Optional[int]  # None: supervisord's default (10 s)
    settle: float  # seconds to let things settle (stragglers, leftovers)


FULL = Settings(
    quick=False,
    reload_reps=5,
    variants=("fast", "slow-import"),
    zd_reps=5,
    zd_duration=10,
    zd_reloads=3,
    crash_reps=5,
    restart_reps=5,
    wrk_lead=1.5,
    wrk_tail=1.0,
    broken_reps=3,
    broken_window=4.0,
    bad_window=14.0,  # past the 10 s bake
    idle_seconds=60,
    idle_slices=6,
    tree_files=1000,
    scale_sizes=(10_000, 100_000),
    scale_reps=3,
    checkout_files=5000,
    stop_reps=3,
    supervisord_stopwaitsecs=None,
    settle=3.0,
)
QUICK = Settings(
    quick=True,
    reload_reps=1,
    variants=("fast",),
    zd_reps=1,
    zd_duration=1,
    zd_reloads=1,
    crash_reps=1,
    restart_reps=1,
    wrk_lead=0.5,
    wrk_tail=0.3,
    broken_reps=1,
    broken_window=1.5,
    bad_window=6.0,
    idle_seconds=5,
    idle_slices=5,
    tree_files=1000,
    scale_sizes=(1000,),
    scale_reps=1,
    checkout_files=500,
    stop_reps=1,
    supervisord_stopwaitsecs=1,
    settle=1.0,
)
