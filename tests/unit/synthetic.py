"""Synthetic ramps with a known tipping point, for the analysis tests.

The curve is a hockey stick around ``capacity`` (req/s): below it the queueing delay is
``base x rho**8 / (1 - rho)`` (rho = offered / capacity; flat, then a sharp rise near 80-90%, like
an M/M/c queue with a few servers); at and past it, requests queue for seconds and goodput falls
as ``capacity x (1 - slope x (rho - 1))``. With the defaults (capacity 200, base 20 ms, SLO 0.5 s)
and steps of 20 req/s: onset at 160, knee at 180, collapse at 220.
"""

from __future__ import annotations

import random
from collections.abc import Iterable

from loadtests.samples import StageSample

CAPACITY = 200.0
BASE_S = 0.020
SLO_S = 0.5
STEPS = [float(r) for r in range(20, 320, 20)]  # 20 .. 300 req/s
ONSET, KNEE, COLLAPSE = 160.0, 180.0, 220.0


def stage(
    index: int,
    rps: float,
    *,
    p50_s: float | None = BASE_S,
    p95_s: float | None = None,
    goodput: float | None = None,
    dropped: float = 0.0,
    offered: float | None = None,
    requests: int | None = None,
    errors: dict[str, int] | None = None,
    window_s: float = 10.0,
) -> StageSample:
    """One stage with explicit figures; unspecified ones are healthy."""
    offered = rps if offered is None else offered
    return StageSample(
        index=index,
        name=f"s{index}-{rps:g}",
        target_rps=rps,
        window_s=window_s,
        offered_rps=offered,
        achieved_rps=offered,
        goodput_rps=offered if goodput is None else goodput,
        dropped_rps=dropped,
        p50_s=p50_s,
        p95_s=(1.5 * p50_s if p50_s is not None else None) if p95_s is None else p95_s,
        p99_s=None if p50_s is None else 2.0 * (p95_s or 1.5 * p50_s),
        errors=errors or {},
        requests=int(offered * window_s) if requests is None else requests,
    )


def hockey(
    rates: Iterable[float] = STEPS,
    *,
    capacity: float = CAPACITY,
    base_s: float = BASE_S,
    slope: float = 2.0,
    noise: float = 0.0,
    seed: int = 0,
) -> list[StageSample]:
    """A ramp over ``rates`` (in run order) on the hockey-stick curve, optionally noisy.

    Noise scales latencies by 1 +/- ``noise`` and lowers goodput by up to ``noise`` / 2.
    """
    rng = random.Random(seed)
    stages = []
    for i, rps in enumerate(rates):
        rho = rps / capacity
        wait = base_s * rho**8 / (1 - rho) if rho < 1 else 0.5 + 2.0 * (rho - 1)
        jitter = 1 + rng.uniform(-noise, noise)
        served = rps if rho <= 1 else max(0.0, capacity * (1 - slope * (rho - 1)))
        goodput = served * (1 - rng.uniform(0, noise / 2))
        stages.append(
            stage(
                i,
                rps,
                p50_s=(base_s + wait) * jitter,
                p95_s=(1.5 * base_s + 3 * wait) * jitter,
                goodput=goodput,
            )
        )
    return stages
