"""The capacity model: Little's law per resource and the bottleneck law."""

from __future__ import annotations

import pytest

from loadtests.capacity import (
    ONSET_UTILISATION,
    Capacities,
    RouteDemand,
    compare_knee,
    predict,
)


def _db_only(hold_s: float) -> list[RouteDemand]:
    return [RouteDemand("orders", 1.0, db_hold_s=hold_s, external_s=0.0, cpu_s=0.0)]


@pytest.mark.parametrize("pool", [2, 4, 5, 10, 20])
@pytest.mark.parametrize("hold_ms", [5, 10, 20.6, 50])
def test_db_pool_saturates_at_pool_over_hold(pool: int, hold_ms: float) -> None:
    prediction = predict(_db_only(hold_ms / 1000), Capacities(pool, external_connections=10))
    assert prediction.bottleneck == "db_pool"
    assert prediction.saturation_rps == pytest.approx(pool / (hold_ms / 1000))
    assert prediction.utilisation_at(prediction.saturation_rps)["db_pool"] == pytest.approx(1.0)


def test_measured_hold_time_gives_the_field_notes_figure() -> None:
    prediction = predict(_db_only(0.0206), Capacities(pool_size=4, external_connections=10))
    assert prediction.saturation_rps == pytest.approx(194.2, abs=0.1)
    assert (
        prediction.explanation
        == "bottleneck db_pool: 4 connections / 0.0206 s per request = 194 req/s"
    )
    assert prediction.rate_at_utilisation() == pytest.approx(ONSET_UTILISATION * 194.17, abs=0.1)


def test_the_mix_weights_each_routes_demand() -> None:
    demands = [
        RouteDemand("items", 0.75, db_hold_s=0.002, external_s=0.0, cpu_s=0.001),
        RouteDemand("orders", 0.25, db_hold_s=0.0764, external_s=0.0, cpu_s=0.001),
    ]
    prediction = predict(demands, Capacities(pool_size=5, external_connections=10))
    # D = 0.75 x 2 ms + 0.25 x 76.4 ms = 20.6 ms; X = 5 / 0.0206
    assert prediction.limiting.demand == pytest.approx(0.0206)
    assert prediction.limiting.explain() == (
        "db_pool: 5 connections / 0.0206 s per request = 243 req/s"
    )


def test_cpu_bottleneck() -> None:
    demands = [RouteDemand("hash", 1.0, db_hold_s=0.002, external_s=0.0, cpu_s=0.008)]
    prediction = predict(demands, Capacities(pool_size=10, external_connections=10))
    assert prediction.bottleneck == "cpu"
    assert prediction.saturation_rps == pytest.approx(125)
    assert prediction.explanation.startswith(
        "bottleneck cpu: 1 core / 0.008 CPU s per request = 125 req/s (next: db_pool"
    )
    two_cores = predict(demands, Capacities(10, 10, cpu_cores=2.0))
    assert two_cores.saturation_rps == pytest.approx(250)


def test_external_pool_bottleneck() -> None:
    demands = [
        RouteDemand("quote", 0.5, db_hold_s=0.001, external_s=0.2, cpu_s=0.001),
        RouteDemand("items", 0.5, db_hold_s=0.001, external_s=0.0, cpu_s=0.001),
    ]
    prediction = predict(demands, Capacities(pool_size=5, external_connections=20))
    assert prediction.bottleneck == "external_pool"
    assert prediction.saturation_rps == pytest.approx(20 / 0.1)
    assert prediction.utilisation_at(100) == pytest.approx(
        {"db_pool": 0.02, "external_pool": 0.5, "cpu": 0.1}
    )


def test_external_api_bottleneck() -> None:
    demands = [
        RouteDemand("quote", 0.5, db_hold_s=0.001, external_s=0.02, cpu_s=0.001),
        RouteDemand("items", 0.5, db_hold_s=0.001, external_s=0.0, cpu_s=0.001),
    ]
    capacities = Capacities(pool_size=5, external_connections=50, external_api_rps=60)
    prediction = predict(demands, capacities)
    assert prediction.bottleneck == "external_api"
    assert prediction.saturation_rps == pytest.approx(120)  # 60 calls/s / 0.5 calls per request
    assert "external_api: 60 calls/s / 0.5 calls per request = 120 req/s" in (
        prediction.explanation
    )


def test_resources_without_demand_are_skipped() -> None:
    prediction = predict(_db_only(0.01), Capacities(5, 10, external_api_rps=100))
    assert [r.name for r in prediction.resources] == ["db_pool"]
    assert prediction.utilisation_at(0) == {"db_pool": 0.0}


def test_a_mix_with_no_demand_at_all_is_refused() -> None:
    with pytest.raises(ValueError, match="no demand on any resource"):
        predict([RouteDemand("noop", 1.0, 0.0, 0.0, 0.0)], Capacities(5, 10))


@pytest.mark.parametrize(
    ("shares", "message"),
    [
        ([0.5, 0.4], "shares must sum to 1, got 0.9"),
        ([0.7, 0.7], "shares must sum to 1, got 1.4"),
        ([], "the mix is empty"),
    ],
)
def test_shares_must_sum_to_one(shares: list[float], message: str) -> None:
    demands = [RouteDemand(f"r{i}", s, 0.01, 0.0, 0.0) for i, s in enumerate(shares)]
    with pytest.raises(ValueError, match=message):
        predict(demands, Capacities(5, 10))


def test_shares_that_sum_to_one_in_floating_point_are_accepted() -> None:
    demands = [RouteDemand(f"r{i}", 0.1, 0.01, 0.0, 0.0) for i in range(10)]
    assert predict(demands, Capacities(5, 10)).saturation_rps == pytest.approx(500)


def test_duplicate_routes_are_refused() -> None:
    demands = [RouteDemand("a", 0.5, 0.01, 0, 0), RouteDemand("a", 0.5, 0.01, 0, 0)]
    with pytest.raises(ValueError, match="more than once: a"):
        predict(demands, Capacities(5, 10))


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"share": -0.1}, "share must be in"),
        ({"share": 1.5}, "share must be in"),
        ({"db_hold_s": -0.01}, "db_hold_s must be >= 0"),
        ({"cpu_s": float("nan")}, "cpu_s must be >= 0"),
        ({"external_s": float("inf")}, "external_s must be >= 0"),
    ],
)
def test_route_demand_is_validated(changes: dict[str, float], message: str) -> None:
    fields: dict[str, float] = {"share": 1.0, "db_hold_s": 0.01, "external_s": 0.0, "cpu_s": 0.0}
    with pytest.raises(ValueError, match=message):
        RouteDemand("r", **{**fields, **changes})


@pytest.mark.parametrize(
    "kwargs",
    [
        {"pool_size": 0, "external_connections": 10},
        {"pool_size": 5, "external_connections": -1},
        {"pool_size": 5, "external_connections": 10, "cpu_cores": 0},
        {"pool_size": 5, "external_connections": 10, "external_api_rps": 0},
    ],
)
def test_capacities_must_be_positive(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="must be > 0"):
        Capacities(**kwargs)  # type: ignore[arg-type]


def test_compare_knee() -> None:
    prediction = predict(_db_only(0.0206), Capacities(4, 10))
    check = compare_knee(prediction, measured_knee_rps=190)
    assert check.predicted == pytest.approx(194.17, abs=0.01)
    assert check.error_ratio == pytest.approx(-0.0215, abs=1e-4)
    assert check.within(0.05)
    assert not check.within(0.01)
    assert compare_knee(prediction, 250).error_ratio > 0
