"""The capacity model: Little's law per resource and the bottleneck law."""

from __future__ import annotations

import pytest

from loadtests.capacity import (
    LOOP_SHARE,
    ONSET_UTILISATION,
    Capacities,
    RouteDemand,
    compare_knee,
    fit_hold_growth,
    loaded_hold,
    loaded_pool_limit,
    loop_wait_factor,
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
    # The loop tips at LOOP_SHARE of its core: 0.72 / 0.008 s = 90 req/s.
    assert prediction.saturation_rps == pytest.approx(LOOP_SHARE / 0.008)
    assert prediction.explanation.startswith(
        "bottleneck cpu: 0.72 of 1 core usable / 0.008 CPU s per request = 90 req/s (next: db_pool"
    )
    two_cores = predict(demands, Capacities(10, 10, cpu_cores=2.0))
    assert two_cores.saturation_rps == pytest.approx(2 * LOOP_SHARE / 0.008)
    whole = predict(demands, Capacities(10, 10, loop_share=1.0))
    assert whole.saturation_rps == pytest.approx(125)
    assert whole.explanation.startswith("bottleneck cpu: 1 of 1 core usable / 0.008 CPU s")


@pytest.mark.parametrize("share", [0.0, -0.5, 1.01])
def test_the_loops_usable_share_is_a_share(share: float) -> None:
    with pytest.raises(ValueError, match="loop_share must be in"):
        Capacities(4, 10, loop_share=share)


def test_external_pool_bottleneck() -> None:
    demands = [
        RouteDemand("quote", 0.5, db_hold_s=0.001, external_s=0.2, cpu_s=0.001),
        RouteDemand("items", 0.5, db_hold_s=0.001, external_s=0.0, cpu_s=0.001),
    ]
    prediction = predict(demands, Capacities(pool_size=5, external_connections=20))
    assert prediction.bottleneck == "external_pool"
    assert prediction.saturation_rps == pytest.approx(20 / 0.1)
    assert prediction.utilisation_at(100) == pytest.approx(
        {"db_pool": 0.02, "external_pool": 0.5, "cpu": 0.1 / LOOP_SHARE}
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
        ({"db_hold_growth_s": -0.001}, "db_hold_growth_s must be >= 0"),
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


# The hold under load: hold(rho) = at rest + growth x rho / (1 - rho), rho = X x CPU per request.


@pytest.mark.parametrize(("rho", "factor"), [(0.0, 0.0), (0.2, 0.25), (0.5, 1.0), (0.75, 3.0)])
def test_loop_wait_grows_like_a_single_servers_queue(rho: float, factor: float) -> None:
    assert loop_wait_factor(rho) == pytest.approx(factor)


@pytest.mark.parametrize("rho", [-0.1, 1.0, 1.5])
def test_loop_wait_needs_a_loop_that_is_not_full(rho: float) -> None:
    with pytest.raises(ValueError, match="loop utilisation"):
        loop_wait_factor(rho)


@pytest.mark.parametrize("growth_ms", [0.0, 1.0, 8.0, 40.0])
@pytest.mark.parametrize("rho", [0.1, 0.3, 0.6])
def test_the_fit_recovers_the_growth_that_made_the_loaded_hold(
    growth_ms: float, rho: float
) -> None:
    loaded = loaded_hold(0.0328, growth_ms / 1000, rho)
    assert fit_hold_growth(0.0328, loaded, rho) == pytest.approx(growth_ms / 1000)


def test_a_loaded_hold_below_the_one_at_rest_fits_no_growth() -> None:
    assert fit_hold_growth(0.0140, 0.0131, 0.3) == 0.0


@pytest.mark.parametrize("rho", [0.0, 1.0])
def test_the_fit_needs_a_loaded_stage_that_used_the_loop(rho: float) -> None:
    with pytest.raises(ValueError, match="loop use"):
        fit_hold_growth(0.01, 0.012, rho)


@pytest.mark.parametrize("pool", [2, 4, 8, 16, 20])
@pytest.mark.parametrize(("hold_ms", "growth_ms"), [(5.0, 1.0), (10.0, 6.0), (32.8, 20.0)])
def test_the_pool_limit_is_the_fixed_point_of_pool_over_loaded_hold(
    pool: int, hold_ms: float, growth_ms: float
) -> None:
    hold, growth, loop = hold_ms / 1000, growth_ms / 1000, 0.0018
    rps = loaded_pool_limit(pool, hold, growth, loop)
    assert rps * loaded_hold(hold, growth, rps * loop) == pytest.approx(pool, rel=1e-6)
    assert rps < pool / hold
    assert rps * loop < 1.0


def test_the_pool_limit_falls_as_the_hold_grows_or_the_loop_slows() -> None:
    limits = [loaded_pool_limit(8, 0.0328, growth, 0.0018) for growth in (0.0, 0.005, 0.02, 0.08)]
    assert limits[0] == pytest.approx(8 / 0.0328)
    assert limits == sorted(limits, reverse=True)
    assert len(set(limits)) == 4
    slower = [loaded_pool_limit(8, 0.0328, 0.02, loop) for loop in (0.001, 0.002, 0.004)]
    assert slower == sorted(slower, reverse=True)


def test_the_pool_limit_refuses_a_meaningless_input() -> None:
    with pytest.raises(ValueError, match="must be > 0"):
        loaded_pool_limit(4, 0.0, 0.01, 0.002)


def _order(hold_s: float, growth_s: float, cpu_s: float = 0.0018) -> list[RouteDemand]:
    return [RouteDemand("/orders", 1.0, hold_s, 0.0, cpu_s, db_hold_growth_s=growth_s)]


def test_predict_uses_the_hold_at_the_loop_use_it_saturates_at() -> None:
    # The 8 / 30 ms case: 32.8 ms at rest; a hold measured at 49.3 ms under ~29% loop use.
    growth = fit_hold_growth(0.0328, 0.0493, 160 * 0.0018)
    prediction = predict(_order(0.0328, growth), Capacities(8, external_connections=10))
    pool = prediction.limiting
    assert prediction.bottleneck == "db_pool"
    assert prediction.saturation_rps < 8 / 0.0328 * 0.75  # well below the at-rest 244 req/s
    assert pool.at_rest_demand == pytest.approx(0.0328)
    assert pool.demand == pytest.approx(8 / prediction.saturation_rps)
    assert pool.loop_utilisation == pytest.approx(prediction.saturation_rps * 0.0018)
    assert prediction.utilisation_at(prediction.saturation_rps)["db_pool"] == pytest.approx(1.0)
    assert "(0.0328 at rest + event-loop wait at " in pool.explain()


def test_without_growth_the_prediction_is_the_hold_at_rest() -> None:
    prediction = predict(_order(0.0328, 0.0), Capacities(8, external_connections=10))
    assert prediction.saturation_rps == pytest.approx(8 / 0.0328)
    assert prediction.limiting.at_rest_demand is None
    assert "at rest" not in prediction.explanation


def test_a_cpu_bound_mix_keeps_its_cpu_limit_despite_a_growing_hold() -> None:
    # Pool 16 / 5 ms: the pool allows 2,460 req/s at rest, the loop 400: the CPU is the knee.
    prediction = predict(_order(0.0065, 0.004), Capacities(16, external_connections=10))
    assert prediction.bottleneck == "cpu"
    assert prediction.saturation_rps == pytest.approx(LOOP_SHARE / 0.0018)
    assert prediction.resources[0].max_rps == pytest.approx(16 / 0.0065)


def test_the_mix_weights_each_routes_growth() -> None:
    demands = [
        RouteDemand("/items/{item_id}", 0.5, 0.002, 0.0, 0.001, db_hold_growth_s=0.001),
        RouteDemand("/orders", 0.5, 0.030, 0.0, 0.002, db_hold_growth_s=0.011),
    ]
    prediction = predict(demands, Capacities(4, external_connections=10))
    # Mix: 16 ms at rest, 6 ms growth, 1.5 ms of loop per request.
    assert prediction.saturation_rps == pytest.approx(loaded_pool_limit(4, 0.016, 0.006, 0.0015))
