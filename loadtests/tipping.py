"""Where a ramp tips over: latency onset, the knee, and goodput collapse.

Pure functions over :class:`~loadtests.samples.StageSample` lists; no clock, no I/O.

Load order. Most rules walk the stages from the lowest load to the highest, whatever order they
ran in (a ramp-and-recover profile steps back down). Stages are sorted by ``target_rps``, the
rate the profile asked for; the measured ``offered_rps`` breaks ties, then run order. The target
is what the operator controls, whereas the measured offered rate sags when the generator itself
falls behind, which would reorder the overload stages. Several stages at the same target
(repeats) form one *load level*.

Goodput share. A stage's goodput is compared with the arrivals it was meant to send:
``goodput / (offered + dropped)``. Dropped arrivals count, because once the generator's in-flight
cap bites, drops are the only sign of overload left (see FIELD-NOTES).

- **onset**: latency starts to climb; the first stage from which p50 *stays* above
  ``factor`` x the baseline p50 (median p50 of the lowest-load stages), so one noisy stage at low
  load is not taken for the onset.
- **knee**: the highest load still served well (goodput share ≥ ``min_goodput_ratio`` and
  p95 ≤ SLO). Rule: find the lowest load level at which *any* stage fails; the knee is the
  highest passing stage below that level. A pass above a failure (a fluke after collapse) does
  not count, nor does a level that passed once and failed on another visit.
- **collapse**: load rose but goodput fell: the first stage whose goodput is more than ``drop``
  (relative) below the best goodput of any lower load level.

A run's stages after a collapse can stay broken at low load (metastable failure). Those stages
fail the knee rule by design; to measure capacity alone, pass :func:`ramp_up` of the stages.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass

from loadtests.samples import StageSample


def goodput_share(stage: StageSample) -> float:
    """Goodput over the arrivals the stage meant to send (offered + dropped); 1.0 when none."""
    arrivals = stage.offered_rps + stage.dropped_rps
    return stage.goodput_rps / arrivals if arrivals > 0 else 1.0


def by_load(stages: Sequence[StageSample]) -> list[StageSample]:
    """The stages from the lowest load to the highest (target, then offered, then run order)."""
    return sorted(stages, key=lambda s: (s.target_rps, s.offered_rps, s.index))


def ramp_up(stages: Sequence[StageSample]) -> list[StageSample]:
    """The stages in run order up to the first one at the highest target (the way up)."""
    if not stages:
        return []
    peak = max(s.target_rps for s in stages)
    end = next(i for i, s in enumerate(stages) if s.target_rps == peak)
    return list(stages[: end + 1])


def baseline_p50(stages: Sequence[StageSample], baseline_stages: int = 2) -> float | None:
    """Median p50 of the ``baseline_stages`` lowest-load stages that have one."""
    p50s = [s.p50_s for s in by_load(stages) if s.p50_s is not None][:baseline_stages]
    return statistics.median(p50s) if p50s else None


def onset(
    stages: Sequence[StageSample], factor: float = 1.5, baseline_stages: int = 2
) -> StageSample | None:
    """The first stage (by load) from which p50 stays above ``factor`` x the baseline p50.

    A stage with no p50 (nothing completed) counts as above. None if latency never climbs.
    """
    base = baseline_p50(stages, baseline_stages)
    if base is None or base <= 0:
        return None
    limit = factor * base
    found: StageSample | None = None
    for stage in by_load(stages):
        climbed = stage.p50_s is None or stage.p50_s > limit
        found = (found or stage) if climbed else None
    return found


def _failure(stage: StageSample, slo_s: float, min_goodput_ratio: float) -> str | None:
    """Why a stage misses the knee criteria, or None when it meets them."""
    share = goodput_share(stage)
    if share < min_goodput_ratio:
        return f"goodput {share:.0%} of offered < {min_goodput_ratio:.0%}"
    if stage.p95_s is None:
        return "no p95 (nothing completed)"
    if stage.p95_s > slo_s:
        return f"p95 {stage.p95_s:.3g} s > SLO {slo_s:g} s"
    return None


def _first_failure(
    stages: Sequence[StageSample], slo_s: float, min_goodput_ratio: float
) -> tuple[StageSample, str] | None:
    for stage in by_load(stages):
        reason = _failure(stage, slo_s, min_goodput_ratio)
        if reason is not None:
            return stage, reason
    return None


def knee(
    stages: Sequence[StageSample], slo_s: float, min_goodput_ratio: float = 0.95
) -> StageSample | None:
    """The highest-load stage below the lowest load level where any stage fails (module rule).

    None if the lowest level already fails (or there are no stages).
    """
    failed = _first_failure(stages, slo_s, min_goodput_ratio)
    limit = failed[0].target_rps if failed else float("inf")
    below = [s for s in by_load(stages) if s.target_rps < limit]
    return below[-1] if below else None


def _collapse_with_peak(
    stages: Sequence[StageSample], drop: float
) -> tuple[StageSample, StageSample] | None:
    peak: StageSample | None = None  # best goodput among strictly lower load levels
    level_best: StageSample | None = None  # best goodput at the current level
    for stage in by_load(stages):
        if level_best is not None and stage.target_rps > level_best.target_rps:
            if peak is None or level_best.goodput_rps > peak.goodput_rps:
                peak = level_best
            level_best = None
        if peak is not None and stage.goodput_rps < (1 - drop) * peak.goodput_rps:
            return stage, peak
        if level_best is None or stage.goodput_rps > level_best.goodput_rps:
            level_best = stage
    return None


def collapse(stages: Sequence[StageSample], drop: float = 0.10) -> StageSample | None:
    """The first stage (by load) whose goodput is > ``drop`` below a lower level's best."""
    found = _collapse_with_peak(stages, drop)
    return found[0] if found else None


@dataclass(frozen=True)
class TippingPoint:
    """Onset, knee and collapse of one run, as offered rates and stage indices."""

    onset_rps: float | None
    onset_index: int | None
    knee_rps: float | None
    knee_index: int | None
    knee_is_lower_bound: bool
    """True when no stage failed: the system was never pushed past its knee."""
    collapse_rps: float | None
    collapse_index: int | None
    explanation: str


def _rate(stage: StageSample | None) -> float | None:
    return stage.offered_rps if stage else None


def _index(stage: StageSample | None) -> int | None:
    return stage.index if stage else None


def find_tipping_point(
    stages: Sequence[StageSample],
    slo_s: float,
    *,
    onset_factor: float = 1.5,
    min_goodput_ratio: float = 0.95,
    collapse_drop: float = 0.10,
) -> TippingPoint:
    """Onset, knee and collapse together, with a short explanation of each."""
    on = onset(stages, onset_factor)
    kn = knee(stages, slo_s, min_goodput_ratio)
    failed = _first_failure(stages, slo_s, min_goodput_ratio)
    col = _collapse_with_peak(stages, collapse_drop)
    parts = [_explain_knee(stages, kn, failed)]
    if on is not None:
        base = baseline_p50(stages) or 0.0
        p50 = "none" if on.p50_s is None else f"{on.p50_s:.3g} s"
        parts.append(
            f"onset at {on.offered_rps:.0f} req/s (p50 {p50} > {onset_factor:g} x {base:.3g} s)"
        )
    if col is not None:
        at, peak = col
        parts.append(
            f"collapse at {at.offered_rps:.0f} req/s (goodput {at.goodput_rps:.0f}/s, down from "
            f"{peak.goodput_rps:.0f}/s at {peak.offered_rps:.0f} req/s)"
        )
    return TippingPoint(
        onset_rps=_rate(on),
        onset_index=_index(on),
        knee_rps=_rate(kn),
        knee_index=_index(kn),
        knee_is_lower_bound=bool(stages) and failed is None,
        collapse_rps=_rate(col[0] if col else None),
        collapse_index=_index(col[0] if col else None),
        explanation="; ".join(parts),
    )


def _explain_knee(
    stages: Sequence[StageSample],
    kn: StageSample | None,
    failed: tuple[StageSample, str] | None,
) -> str:
    if not stages:
        return "no stages"
    if failed is None:
        top = by_load(stages)[-1]
        return f"no knee reached: all stages up to {top.offered_rps:.0f} req/s met the SLO"
    stage, reason = failed
    at = f"at {stage.offered_rps:.0f} req/s {reason}"
    if kn is None:
        return f"no knee: even the lowest load fails, {at}"
    return f"knee at {kn.offered_rps:.0f} req/s: {at}"


@dataclass(frozen=True)
class AbortRule:
    """When a live run stops early: collapse reached, or goodput too low for too long.

    A stage is *failing* when its goodput share is below ``min_goodput_ratio`` or its p50
    exceeds the SLO (more than half the requests too slow). ``consecutive`` failing stages in a
    row, in run order, abort the run; so does :func:`collapse` with ``collapse_drop``.
    """

    min_goodput_ratio: float = 0.5
    consecutive: int = 2
    collapse_drop: float = 0.10


def abort_reason(
    stages_so_far: Sequence[StageSample], slo_s: float, rule: AbortRule = AbortRule()
) -> str | None:
    """Why the run should stop now, or None to carry on."""
    col = collapse(stages_so_far, rule.collapse_drop)
    if col is not None:
        return f"goodput collapsed at {col.offered_rps:.0f} req/s ({col.goodput_rps:.0f}/s)"
    n = rule.consecutive
    recent = stages_so_far[-n:] if n > 0 else []
    if n > 0 and len(recent) == n and all(_failing_live(s, slo_s, rule) for s in recent):
        return (
            f"{rule.consecutive} stages in a row below {rule.min_goodput_ratio:.0%} goodput "
            f"or with p50 over the {slo_s:g} s SLO"
        )
    return None


def _failing_live(stage: StageSample, slo_s: float, rule: AbortRule) -> bool:
    too_slow = stage.p50_s is not None and stage.p50_s > slo_s
    return goodput_share(stage) < rule.min_goodput_ratio or too_slow


def should_abort(
    stages_so_far: Sequence[StageSample], slo_s: float, rule: AbortRule = AbortRule()
) -> bool:
    """True once the run has collapsed or kept failing (see :class:`AbortRule`)."""
    return abort_reason(stages_so_far, slo_s, rule) is not None
