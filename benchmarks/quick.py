"""(c) How long does a quick ramp that names the knee take, end to end?

The configuration of ``tests/e2e/test_ramp.py``: a pool of 4 with a 40 ms DB hold per order
(saturation ~95 req/s), a breakpoint from 60 req/s in +10 req/s steps of 8 s, orders only,
even arrivals, SLO 1 s. Timed around ``run_job``: stack start, probe, ramp, reports, stop.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from benchmarks.ramps import RampRow, timed_ramp
from loadtests.ramp import RampJob
from loadtests.runner import RampConfig

Say = Callable[[str], None]
QUICK_GOAL_S = 90.0

E2E_SETTINGS = {
    "BRINK_DB__POOL_MAX": "4",
    "BRINK_DB__POOL_MIN": "4",
    "BRINK_DB__EXTRA_LATENCY_S": "0.04",
}
E2E_RAMP = RampConfig(
    profile="breakpoint",
    average_rps=60,
    peak_rps=100,
    step_s=8,
    slo_s=1.0,
    timeout_s=3,
    mix="order=1",
    arrivals="even",
    seed=1,
)


def run_quick(repeats: int, base_dir: Path, say: Say) -> Iterator[RampRow]:
    """The e2e ramp ``repeats`` times, each from a fresh stack; each row when measured."""
    for n in range(1, repeats + 1):
        job = RampJob(config=E2E_RAMP, run_dir=base_dir / f"run-{n}", settings=E2E_SETTINGS)
        yield timed_ramp(f"(c) run {n}/{repeats}", job, say)


def median_wall_s(rows: Sequence[RampRow]) -> float | None:
    return statistics.median(r.wall_s for r in rows) if rows else None
