"""A run reduced to its summary metrics, and back from JSON."""

from __future__ import annotations

import json

import pytest

from loadtests.capacity import Capacities, RouteDemand, predict
from loadtests.summary import METRICS, RunSummary, summarize
from tests.unit.synthetic import COLLAPSE, KNEE, ONSET, SLO_S, hockey, stage


def test_summarize_a_hockey_stick() -> None:
    prediction = predict(
        [RouteDemand("orders", 1.0, db_hold_s=0.025, external_s=0.0, cpu_s=0.0)],
        Capacities(pool_size=5, external_connections=10),
    )
    summary = summarize(hockey(), SLO_S, average_rps=100, peak_rps=300, prediction=prediction)
    assert (summary.knee_rps, summary.onset_rps, summary.collapse_rps) == (KNEE, ONSET, COLLAPSE)
    assert summary.predicted_rps == pytest.approx(200)
    assert summary.knee_error_ratio == pytest.approx(-0.1)
    assert summary.max_offered_rps == 300
    assert summary.goodput_ratio_at_peak == pytest.approx(0.0)  # 200 x (1 - 2 x 0.5) = 0
    assert summary.dropped_ratio == 0.0
    assert summary.error_rate_at_average == 0.0
    assert summary.p95_at_average_ms is not None
    assert summary.p95_at_average_ms == pytest.approx(30.47, abs=0.01)


def test_without_a_model_there_is_no_prediction() -> None:
    summary = summarize(hockey(), SLO_S, average_rps=100, peak_rps=300)
    assert summary.predicted_rps is None
    assert summary.knee_error_ratio is None


def test_repeated_average_stages_pool_errors_and_take_the_worst_percentile() -> None:
    stages = [
        stage(0, 50, p95_s=0.040, requests=1000, errors={"timeout": 10}),
        stage(1, 100),
        stage(2, 50, p95_s=0.120, requests=1000, errors={"http_503": 30}),
    ]
    summary = summarize(stages, SLO_S, average_rps=50, peak_rps=100)
    assert summary.p95_at_average_ms == pytest.approx(120)
    assert summary.error_rate_at_average == pytest.approx(0.02)


def test_missing_rates_fall_back_to_the_lowest_and_highest_load() -> None:
    stages = [stage(0, 50, p95_s=0.04), stage(1, 300, goodput=150), stage(2, 100)]
    summary = summarize(stages, SLO_S, average_rps=75, peak_rps=500)
    assert summary.p95_at_average_ms == pytest.approx(40)
    assert summary.goodput_ratio_at_peak == pytest.approx(0.5)


def test_goodput_and_drops_are_weighted_by_window_and_count_arrivals() -> None:
    stages = [
        stage(0, 100, window_s=10),
        stage(1, 200, offered=150, goodput=150, dropped=50, window_s=30),
    ]
    summary = summarize(stages, SLO_S, average_rps=100, peak_rps=200)
    assert summary.goodput_ratio_at_peak == pytest.approx(0.75)
    assert summary.dropped_ratio == pytest.approx(50 * 30 / (100 * 10 + 200 * 30))


def test_no_completed_requests_at_average_means_no_values() -> None:
    stages = [stage(0, 50, p50_s=None, goodput=0, requests=0), stage(1, 100)]
    summary = summarize(stages, SLO_S, average_rps=50, peak_rps=100)
    assert summary.p95_at_average_ms is None
    assert summary.error_rate_at_average is None
    assert summary.knee_rps is None


def test_summarize_refuses_an_empty_run() -> None:
    with pytest.raises(ValueError, match="no stages"):
        summarize([], SLO_S, average_rps=1, peak_rps=2)


def test_round_trips_through_json() -> None:
    summary = summarize(hockey(), SLO_S, average_rps=100, peak_rps=300)
    data = json.loads(json.dumps(summary.to_dict()))
    assert list(data) == list(METRICS)
    assert RunSummary.from_dict(data) == summary
    assert RunSummary.from_dict({**data, "added_later": 1}) == summary


def test_from_dict_rejects_missing_and_non_numeric_values() -> None:
    data = summarize(hockey(), SLO_S, average_rps=100, peak_rps=300).to_dict()
    with pytest.raises(ValueError, match="lacks knee_rps"):
        RunSummary.from_dict({k: v for k, v in data.items() if k != "knee_rps"})
    with pytest.raises(ValueError, match="knee_rps must be a number or null"):
        RunSummary.from_dict({**data, "knee_rps": "190"})
    with pytest.raises(ValueError, match="must be a number"):
        RunSummary.from_dict({**data, "dropped_ratio": True})
