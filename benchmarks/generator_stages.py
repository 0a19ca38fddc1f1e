"""Per-stage figures of a generator-only ramp, and the highest rate it kept up with (pure).

Input: the ``--brink-out`` document of brink's locustfile (per-second series and the stage
timeline) and CPU readings of the generator taken during the run. A stage *passes* when the
generator offered what was asked (offered ≥ 95% of the target), dropped ≤ 1% of the target,
every request succeeded (≤ 1% failed) and its own client-side p95 stayed within ``max_p95_s``:
the target answers in well under a millisecond, so any latency beyond that is the generator
running late (it would inflate every latency a real ramp measures).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from benchmarks.cpu import CpuSample
from loadtests.series import Series, window
from loadtests.shapes import DRAIN

MIN_OFFERED_SHARE = 0.95
MAX_DROPPED_SHARE = 0.01
MAX_FAILED_SHARE = 0.01


@dataclass(frozen=True)
class Criteria:
    """What a stage must meet to count as kept up with."""

    max_p95_s: float = 0.05
    min_offered_share: float = MIN_OFFERED_SHARE
    max_dropped_share: float = MAX_DROPPED_SHARE
    max_failed_share: float = MAX_FAILED_SHARE


@dataclass(frozen=True)
class GeneratorStage:
    """One stage of a generator ramp, over its measured window."""

    name: str
    target_rps: float
    window_s: float
    offered_rps: float
    dropped_rps: float
    achieved_rps: float
    failed: int
    p50_s: float | None
    p95_s: float | None
    generator_cores: float | None
    """CPU of the Locust process tree (master and workers), in cores."""
    target_cores: float | None
    """CPU of the canned target."""
    box_cores: float | None
    failure: str | None
    """Why the stage does not count as kept up with; None when it does."""

    @property
    def passed(self) -> bool:
        return self.failure is None


def judge(
    target: float, offered: float, dropped: float, failed_share: float, p95: float | None,
    criteria: Criteria,
) -> str | None:  # fmt: skip
    """The first criterion a stage misses, or None."""
    if offered < criteria.min_offered_share * target:
        return f"offered {offered / target:.0%} of target"
    if dropped > criteria.max_dropped_share * target:
        return f"dropped {dropped / target:.1%} of target"
    if failed_share > criteria.max_failed_share:
        return f"{failed_share:.1%} failed"
    if p95 is None or p95 > criteria.max_p95_s:
        return "no p95" if p95 is None else f"p95 {p95 * 1000:.0f} ms"
    return None


def _cpu_between(
    samples: Sequence[CpuSample], first: float, last: float
) -> tuple[CpuSample, CpuSample] | None:
    """The readings nearest to the window's two ends (``at`` is the wall clock here)."""
    if len(samples) < 2:
        return None
    start = min(samples, key=lambda s: abs(s.at - first))
    end = min(samples, key=lambda s: abs(s.at - last))
    return (start, end) if end.at > start.at else None


def stages_of(
    document: Mapping[str, Any],
    generator_cpu: Sequence[CpuSample],
    target_cpu: Sequence[CpuSample],
    settle_s: float,
    criteria: Criteria,
) -> list[GeneratorStage]:
    """Every stage of the run (drain tail left out), measured after ``settle_s``.

    CPU samples must carry the wall clock (``time.time()``) in ``at``.
    """
    seconds = Series.seconds_from_dict(document["seconds"])
    timeline = document["timeline"]
    ends = [entry["start"] for entry in timeline[1:]] + [document["ended_at"]]
    stages = []
    for entry, end in zip(timeline, ends, strict=True):
        first, last = math.ceil(entry["start"] + settle_s), math.floor(end)
        if entry["name"] == DRAIN or last - first < 1:
            continue
        client = window(seconds, first, last)
        failed = sum(client.errors.values())
        failed_share = failed / client.requests if client.requests else 0.0
        gen = _cpu_between(generator_cpu, first, last)
        tgt = _cpu_between(target_cpu, first, last)
        gen_use = gen[1].usage_since(gen[0]) if gen else None
        tgt_use = tgt[1].usage_since(tgt[0]) if tgt else None
        failure = judge(
            entry["rps"], client.offered_rps, client.dropped_rps, failed_share, client.p95_s,
            criteria,
        )  # fmt: skip
        stages.append(
            GeneratorStage(
                name=entry["name"],
                target_rps=entry["rps"],
                window_s=client.window_s,
                offered_rps=client.offered_rps,
                dropped_rps=client.dropped_rps,
                achieved_rps=client.achieved_rps,
                failed=failed,
                p50_s=client.p50_s,
                p95_s=client.p95_s,
                generator_cores=gen_use.tree_cores if gen_use else None,
                target_cores=tgt_use.process_cores if tgt_use else None,
                box_cores=gen_use.box_cores if gen_use else None,
                failure=failure,
            )
        )
    return stages


def max_kept_up(stages: Sequence[GeneratorStage]) -> GeneratorStage | None:
    """The highest passing stage below the first one that offered too little or dropped.

    A stage failing on latency alone may sit below a passing one (a GC pause in a short
    window); a stage that could not send what was asked marks the generator's limit.
    """
    limit = min(
        (s.target_rps for s in stages if s.failure and not s.failure.startswith("p95")),
        default=math.inf,
    )
    passing = [s for s in stages if s.passed and s.target_rps < limit]
    return max(passing, key=lambda s: s.target_rps) if passing else None
