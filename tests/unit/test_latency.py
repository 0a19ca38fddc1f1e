"""The slow API's latency model, on seeded random sources."""

from __future__ import annotations

import math
import random
import statistics

import pytest

from demo_service.latency import LatencyModel
from demo_service.settings import SlowApiSettings

SAMPLES = 20_000


def _model(**changes: float) -> LatencyModel:
    knobs: dict[str, float] = {
        "base_s": 0.02,
        "jitter_sigma": 0.5,
        "capacity": 10,
        "error_rate": 0.0,
        **changes,
    }
    return LatencyModel(
        base_s=knobs["base_s"],
        jitter_sigma=knobs["jitter_sigma"],
        capacity=int(knobs["capacity"]),
        error_rate=knobs["error_rate"],
    )


def test_from_settings_copies_the_knobs() -> None:
    settings = SlowApiSettings(base_latency_s=0.05, jitter_sigma=1.0, capacity=7, error_rate=0.25)
    assert LatencyModel.from_settings(settings) == LatencyModel(0.05, 1.0, 7, 0.25)


def test_median_is_the_base_latency() -> None:
    model, rng = _model(), random.Random(1)
    delays = [model.delay(rng, in_flight=1) for _ in range(SAMPLES)]
    assert statistics.median(delays) == pytest.approx(0.02, rel=0.03)


def test_mean_follows_the_lognormal() -> None:
    model, rng = _model(), random.Random(2)
    delays = [model.delay(rng, in_flight=1) for _ in range(SAMPLES)]
    assert statistics.fmean(delays) == pytest.approx(0.02 * math.exp(0.5**2 / 2), rel=0.02)


def test_sigma_zero_is_exactly_the_base() -> None:
    model, rng = _model(jitter_sigma=0.0), random.Random(3)
    assert {model.delay(rng, in_flight) for in_flight in range(11) for _ in range(100)} == {0.02}


@pytest.mark.parametrize(
    ("in_flight", "factor"), [(0, 1.0), (1, 1.0), (10, 1.0), (15, 1.5), (20, 2.0), (40, 4.0)]
)
def test_slowdown_past_capacity(in_flight: int, factor: float) -> None:
    model = _model(jitter_sigma=0.0)
    assert model.slowdown(in_flight) == factor
    assert model.delay(random.Random(4), in_flight) == pytest.approx(0.02 * factor)


def test_slowdown_multiplies_the_jitter() -> None:
    model = _model(jitter_sigma=1.0)
    alone = [model.delay(random.Random(seed), in_flight=5) for seed in range(50)]
    crowded = [model.delay(random.Random(seed), in_flight=30) for seed in range(50)]
    assert crowded == pytest.approx([3 * delay for delay in alone])


def test_same_seed_same_delays() -> None:
    model = _model()
    first, second = random.Random(5), random.Random(5)
    assert [model.delay(first, 1) for _ in range(100)] == [
        model.delay(second, 1) for _ in range(100)
    ]


def test_error_rate_frequency() -> None:
    model, rng = _model(error_rate=0.1), random.Random(6)
    failures = sum(model.fails(rng) for _ in range(SAMPLES))
    assert failures / SAMPLES == pytest.approx(0.1, abs=0.01)


@pytest.mark.parametrize(("error_rate", "expected"), [(0.0, False), (1.0, True)])
def test_error_rate_extremes(error_rate: float, expected: bool) -> None:
    model, rng = _model(error_rate=error_rate), random.Random(7)
    assert {model.fails(rng) for _ in range(1_000)} == {expected}


def test_no_negative_delays() -> None:
    model, rng = _model(jitter_sigma=3.0), random.Random(8)
    delays = [model.delay(rng, in_flight) for in_flight in range(50) for _ in range(400)]
    assert all(math.isfinite(delay) and delay >= 0 for delay in delays)
    assert _model(base_s=0.0).delay(rng, 100) == 0.0


@pytest.mark.parametrize(
    "changes",
    [
        {"base_s": -0.01},
        {"base_s": math.inf},
        {"jitter_sigma": -1.0},
        {"jitter_sigma": math.nan},
        {"capacity": 0},
        {"error_rate": 1.5},
        {"error_rate": -0.1},
    ],
)
def test_rejects_impossible_knobs(changes: dict[str, float]) -> None:
    with pytest.raises(ValueError, match=next(iter(changes))):
        _model(**changes)
