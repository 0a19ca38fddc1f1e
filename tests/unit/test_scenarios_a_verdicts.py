"""Verdicts of average-vs-peak, tipping-point and fragile-vs-resilient on synthetic stages."""

from __future__ import annotations

import dataclasses
import math

import pytest

from loadtests.faults.runner import AppliedFault
from loadtests.samples import ServerSample, StageSample
from loadtests.scenarios import average_vs_peak, fragile_vs_resilient, tipping_point
from loadtests.scenarios.base import combined, fault_windows, healthy, ratio
from tests.unit.synthetic import SLO_S, hockey, stage


def _server(in_flight: float, waiters: float) -> ServerSample:
    return ServerSample(
        in_flight=in_flight,
        pool_in_use=2.0,
        pool_size=2,
        pool_waiters=waiters,
        acquire_wait_s=0.0,
        external_in_flight=0.0,
        cpu_utilisation=0.1,
        throughput_rps=100.0,
    )


# --- base helpers --------------------------------------------------------------------------------


def test_healthy_needs_both_goodput_and_p95() -> None:
    assert healthy(stage(0, 100, p95_s=0.2), SLO_S)
    assert not healthy(stage(0, 100, p95_s=0.6), SLO_S)
    assert not healthy(stage(0, 100, p95_s=0.2, goodput=90), SLO_S)
    assert not healthy(stage(0, 100, p50_s=None, p95_s=None), SLO_S)


def test_combined_weights_rates_by_window_and_sums_counts() -> None:
    a = stage(0, 100, goodput=100, window_s=10, errors={"timeout": 2})
    b = stage(1, 100, offered=110, goodput=50, window_s=30, errors={"timeout": 1, "http_503": 4})
    merged = combined([a, b])

    assert merged is not None
    assert merged.window_s == 40
    assert merged.offered_rps == pytest.approx((100 * 10 + 110 * 30) / 40)
    assert merged.goodput_rps == pytest.approx((100 * 10 + 50 * 30) / 40)
    assert merged.errors == {"timeout": 3, "http_503": 4}
    assert merged.requests == a.requests + b.requests
    assert combined([]) is None


def test_ratio_is_nan_without_a_denominator() -> None:
    assert ratio(3.0, 2.0) == 1.5
    assert math.isnan(ratio(3.0, 0.0))
    assert math.isnan(ratio(None, 2.0))


def test_fault_windows_pair_each_apply_with_its_undo() -> None:
    events = [
        AppliedFault(100.0, 0.0, "apply", "slow_api.extra_latency_s=0.2", True),
        AppliedFault(105.0, 5.0, "apply", "service.db_latency_s=0.05", False, "refused"),
        AppliedFault(110.0, 10.0, "undo", "slow_api.extra_latency_s=0.2", True),
        AppliedFault(120.0, 20.0, "apply", "postgres.pause", True),
    ]
    windows = fault_windows(events)

    assert [(w.label, w.start, w.end) for w in windows] == [
        ("slow_api.extra_latency_s=0.2", 100.0, 110.0),
        ("postgres.pause", 120.0, None),
    ]


# --- average-vs-peak -----------------------------------------------------------------------------


def test_average_vs_peak_tips_when_only_the_peak_fails() -> None:
    average = stage(0, 50, p95_s=0.08)
    peak = stage(1, 120, p95_s=1.4, goodput=40)
    verdict = average_vs_peak.verdict(average, peak, SLO_S)

    assert verdict.passed
    assert verdict.label == "tipped at peak"
    assert verdict.figures["average_goodput_ratio"] == 1.0
    assert verdict.figures["peak_goodput_ratio"] == pytest.approx(40 / 120)
    assert verdict.figures["peak_p95_s"] == 1.4
    assert "1400 ms" in verdict.headline


@pytest.mark.parametrize(
    ("average", "peak", "label"),
    [
        (stage(0, 50, p95_s=0.08), stage(1, 120, p95_s=0.3), "held at peak"),
        (stage(0, 50, p95_s=0.9), stage(1, 120, p95_s=1.4, goodput=40), "unhealthy at average"),
        (stage(0, 50, goodput=40, p95_s=0.1), stage(1, 120, p95_s=2), "unhealthy at average"),
    ],
)
def test_average_vs_peak_fails_when_the_lesson_does_not_show(
    average: StageSample, peak: StageSample, label: str
) -> None:
    verdict = average_vs_peak.verdict(average, peak, SLO_S)
    assert not verdict.passed
    assert verdict.label == label


def test_average_vs_peak_without_data_fails() -> None:
    assert not average_vs_peak.verdict(None, stage(1, 120), SLO_S).passed


# --- tipping-point -------------------------------------------------------------------------------


def _with_servers(stages: list[StageSample]) -> list[StageSample]:
    """Attach a service view that follows Little's law: in flight = goodput x latency."""
    out = []
    for s in stages:
        latency = s.p50_s or 0.0
        in_flight = s.offered_rps * latency
        waiters = max(0.0, in_flight - 2.0)
        out.append(dataclasses.replace(s, server=_server(in_flight, waiters)))
    return out


def test_tipping_point_names_the_knee_and_the_pile_up() -> None:
    stages = _with_servers(hockey())
    verdict = tipping_point.verdict(stages, SLO_S)

    assert verdict.passed
    assert verdict.label == "knee found"
    assert verdict.figures["knee_rps"] == 180.0  # synthetic.KNEE
    assert verdict.figures["in_flight_growth"] > verdict.figures["load_ratio"]
    assert verdict.figures["pool_waiters_growth"] > verdict.figures["load_ratio"]
    assert verdict.figures["goodput_share_past_knee"] < verdict.figures["goodput_share_at_knee"]
    assert "knee at 180 req/s" in verdict.headline


def test_tipping_point_without_pile_up_fails() -> None:
    # Past the "knee" goodput fell but nothing queued in the service (e.g. the generator's
    # limit): in flight grows no faster than the load.
    stages = [
        dataclasses.replace(s, server=_server(in_flight=s.offered_rps * 0.02, waiters=0.0))
        for s in hockey()
    ]
    verdict = tipping_point.verdict(stages, SLO_S)
    assert not verdict.passed
    assert verdict.label == "no pile-up"


def test_tipping_point_never_past_the_knee() -> None:
    stages = _with_servers(hockey([20.0, 40.0, 60.0]))
    verdict = tipping_point.verdict(stages, SLO_S)
    assert not verdict.passed
    assert verdict.label == "knee not reached"


def test_tipping_point_without_server_scrapes() -> None:
    verdict = tipping_point.verdict(hockey(), SLO_S)
    assert not verdict.passed
    assert verdict.label == "no server data"


# --- fragile-vs-resilient ------------------------------------------------------------------------


def test_capacity_is_the_best_goodput_of_the_ramp() -> None:
    # A shedding service: past the knee (90 req/s) its goodput share drops under 95%, but its
    # goodput still rises to the pool's limit; that limit is the capacity.
    stages = [
        stage(0, 50, p95_s=0.1),
        stage(1, 70, p95_s=0.1),
        stage(2, 90, p95_s=0.2),
        stage(3, 110, p95_s=0.3, goodput=98),
        stage(4, 130, p95_s=0.3, goodput=95),
    ]
    measured = fragile_vs_resilient.capacity(stages, SLO_S)
    assert measured == fragile_vs_resilient.Capacity(90, 98, lower_bound=False)


def test_capacity_of_a_ramp_that_never_tipped_is_a_lower_bound() -> None:
    measured = fragile_vs_resilient.capacity([stage(0, 50), stage(1, 70)], SLO_S)
    assert measured == fragile_vs_resilient.Capacity(70, 70, lower_bound=True)


def test_no_capacity_when_even_the_lowest_stage_fails() -> None:
    assert fragile_vs_resilient.capacity([stage(0, 10, p95_s=2.0)], SLO_S) is None


def test_contrast_shown_when_both_goals_hold() -> None:
    measured = fragile_vs_resilient.Capacity(100.0, 98.0, False)
    resilient = stage(0, 200, goodput=92.0)
    fragile = stage(1, 200, goodput=12.0)
    verdict = fragile_vs_resilient.verdict(measured, resilient, fragile)

    assert verdict.passed
    assert verdict.label == "contrast shown"
    assert verdict.figures["resilient_goodput_of_capacity"] == pytest.approx(92 / 98)
    assert verdict.figures["fragile_goodput_of_capacity"] == pytest.approx(12 / 98)


@pytest.mark.parametrize(
    ("resilient_goodput", "fragile_goodput", "label"),
    [
        (80.0, 10.0, "partial contrast"),  # resilient misses 90%, still clearly ahead
        (95.0, 40.0, "partial contrast"),  # fragile above 30%
        (60.0, 55.0, "no contrast"),
    ],
)
def test_contrast_fails_when_a_goal_is_missed(
    resilient_goodput: float, fragile_goodput: float, label: str
) -> None:
    measured = fragile_vs_resilient.Capacity(100.0, 100.0, False)
    verdict = fragile_vs_resilient.verdict(
        measured, stage(0, 200, goodput=resilient_goodput), stage(1, 200, goodput=fragile_goodput)
    )
    assert not verdict.passed
    assert verdict.label == label


def test_contrast_without_a_knee_or_data_fails() -> None:
    assert fragile_vs_resilient.verdict(None, stage(0, 200), stage(1, 200)).label == "no knee"
    measured = fragile_vs_resilient.Capacity(100.0, 100.0, False)
    assert fragile_vs_resilient.verdict(measured, None, stage(1, 200)).label == "no data"
