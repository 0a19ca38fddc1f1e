"""One run in a handful of numbers: what thresholds check and what run-over-run compare diffs.

Pure: :func:`summarize` reads recorded stages; no clock, no I/O. A metric is None when the run
cannot tell (no knee found, collapse not reached, no model given, nothing completed).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, fields
from typing import Any

from loadtests.capacity import Prediction, compare_knee
from loadtests.samples import StageSample
from loadtests.tipping import by_load, find_tipping_point


@dataclass(frozen=True)
class RunSummary:
    """The metrics a threshold can name (see :data:`METRICS`). Rates in req/s."""

    knee_rps: float | None
    onset_rps: float | None
    collapse_rps: float | None
    """None when the run never collapsed."""
    predicted_rps: float | None
    """The capacity model's saturation throughput; None without a model."""
    knee_error_ratio: float | None
    """``(knee - predicted) / predicted``; None without both."""
    p95_at_average_ms: float | None
    p99_at_average_ms: float | None
    error_rate_at_average: float | None
    """Failed / completed requests at the average rate; None if nothing completed."""
    goodput_ratio_at_peak: float
    """Goodput over arrivals (offered + dropped) at the peak rate."""
    max_offered_rps: float
    dropped_ratio: float
    """Dropped arrivals over all arrivals (offered + dropped), whole run."""

    def to_dict(self) -> dict[str, float | None]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunSummary:
        """Rebuild from :meth:`to_dict` output (e.g. a JSON baseline); unknown keys are ignored."""
        missing = [m for m in METRICS if m not in data]
        if missing:
            raise ValueError(f"run summary lacks {', '.join(missing)}")
        values: dict[str, Any] = {}
        for name in METRICS:
            value = data[name]
            if value is not None and (
                isinstance(value, bool) or not isinstance(value, int | float)
            ):
                raise ValueError(f"run summary {name} must be a number or null, got {value!r}")
            values[name] = None if value is None else float(value)
        return cls(**values)


METRICS: tuple[str, ...] = tuple(f.name for f in fields(RunSummary))
"""Every metric name, in declaration order."""


def _at(stages: Sequence[StageSample], rps: float, fallback: int) -> list[StageSample]:
    """Stages whose target is ``rps``; else the lowest (fallback 0) or highest (-1) load stage."""
    matching = [s for s in stages if math.isclose(s.target_rps, rps, rel_tol=1e-9, abs_tol=1e-9)]
    return matching or [by_load(stages)[fallback]]


def _weighted_ratio(
    stages: Sequence[StageSample],
    top: Callable[[StageSample], float],
    bottom: Callable[[StageSample], float],
) -> float | None:
    """``sum(top x window) / sum(bottom x window)``; None when the bottom is zero.

    Stages weigh by their measured windows (equally if no stage has one).
    """
    windows = [s.window_s for s in stages]
    if math.fsum(windows) <= 0:
        windows = [1.0] * len(stages)
    den = math.fsum(bottom(s) * w for s, w in zip(stages, windows, strict=True))
    num = math.fsum(top(s) * w for s, w in zip(stages, windows, strict=True))
    return num / den if den > 0 else None


def _worst_ms(values: Sequence[float | None]) -> float | None:
    """The worst of several stages' percentiles, in ms: percentiles do not average."""
    known = [v for v in values if v is not None]
    return max(known) * 1000.0 if known else None


def summarize(
    stages: Sequence[StageSample],
    slo_s: float,
    average_rps: float,
    peak_rps: float,
    prediction: Prediction | None = None,
) -> RunSummary:
    """Reduce a run's stages to a :class:`RunSummary`.

    "At average" means the stages whose target is ``average_rps`` (else the lowest-load stage);
    "at peak" the stages whose target is ``peak_rps`` (else the highest-load stage). Several
    stages at one rate are pooled (weighted by their windows); percentiles take the worst.
    """
    if not stages:
        raise ValueError("no stages to summarize")
    point = find_tipping_point(stages, slo_s)
    average = _at(stages, average_rps, 0)
    peak = _at(stages, peak_rps, -1)
    requests = sum(s.requests for s in average)
    errors = sum(sum(s.errors.values()) for s in average)
    predicted = prediction.saturation_rps if prediction else None
    knee_error = (
        compare_knee(prediction, point.knee_rps).error_ratio
        if prediction is not None and point.knee_rps is not None
        else None
    )
    goodput = _weighted_ratio(
        peak, lambda s: s.goodput_rps, lambda s: s.offered_rps + s.dropped_rps
    )
    dropped = _weighted_ratio(
        stages, lambda s: s.dropped_rps, lambda s: s.offered_rps + s.dropped_rps
    )
    return RunSummary(
        knee_rps=point.knee_rps,
        onset_rps=point.onset_rps,
        collapse_rps=point.collapse_rps,
        predicted_rps=predicted,
        knee_error_ratio=knee_error,
        p95_at_average_ms=_worst_ms([s.p95_s for s in average]),
        p99_at_average_ms=_worst_ms([s.p99_s for s in average]),
        error_rate_at_average=errors / requests if requests else None,
        goodput_ratio_at_peak=1.0 if goodput is None else goodput,
        max_offered_rps=max(s.offered_rps for s in stages),
        dropped_ratio=dropped or 0.0,
    )
