"""The probe's loaded stage as arithmetic: scrapes in, the CPU and each route's hold growth out."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest

from loadtests.capacity import LOOP_SHARE, Capacities, RouteDemand, loaded_hold, predict
from loadtests.probe import (
    FullLoop,
    Holder,
    LoadedStage,
    ProbeFailed,
    fit_loaded,
    measure_full,
    measure_loaded,
    model_capacities,
    model_cpu,
    with_cpu,
)
from loadtests.scrape import PRECISE_CPU, TICK_CPU, Key, Scrape

ORDERS, ITEMS, CPU = "/orders", "/items/{item_id}", "/cpu"
MIX = (
    RouteDemand(ORDERS, 0.5, db_hold_s=0.0328, external_s=0.0, cpu_s=0.002),
    RouteDemand(ITEMS, 0.4, db_hold_s=0.0012, external_s=0.0, cpu_s=0.001),
    RouteDemand(CPU, 0.1, db_hold_s=0.0, external_s=0.0, cpu_s=0.010),
)


def _scrape(
    at: float, cpu_s: float, pool: dict[str, tuple[float, float]], cpu: str = PRECISE_CPU
) -> Scrape:
    """``pool`` maps a route to (acquisitions, busy seconds) so far."""
    values: dict[Key, float] = {(cpu, ()): cpu_s}
    for route, (acquired, busy) in pool.items():
        values[("brink_db_pool_acquisitions_total", (("route", route),))] = acquired
        values[("brink_db_connection_busy_seconds_total", (("route", route),))] = busy
    return Scrape(at, values)


def _marks(orders_holds: list[float]) -> list[tuple[Scrape, int]]:
    """1 s sub-windows at 100 req/s: 50 orders (holding as given) and 40 item reads (1.5 ms)."""
    marks, orders, items = (
        [(_scrape(100.0, 7.0, {ORDERS: (1_000, 33.0), ITEMS: (800, 1.0)}), 0)],
        [1_000, 33.0],
        [800, 1.0],
    )
    for second, hold in enumerate(orders_holds, start=1):
        orders = [orders[0] + 50, orders[1] + 50 * hold]
        items = [items[0] + 40, items[1] + 40 * 0.0015]
        pool = {ORDERS: (orders[0], orders[1]), ITEMS: (items[0], items[1])}
        marks.append((_scrape(100.0 + second, 7.0 + 0.28 * second, pool), 100 * second))
    return marks


def test_the_loaded_stage_reads_the_mixs_cpu_each_routes_hold_and_the_loop_use() -> None:
    stage = measure_loaded(_marks([0.045, 0.045, 0.045]), cores=1.0)
    assert stage.rate_rps == pytest.approx(100)
    assert stage.db_hold_s == pytest.approx({ORDERS: 0.045, ITEMS: 0.0015})
    # 0.28 CPU seconds a second over 100 req/s: 2.8 ms a request, the loop 28% busy.
    assert stage.cpu_s == pytest.approx(0.0028)
    assert stage.service_cores == pytest.approx(0.28)
    assert stage.loop_utilisation == pytest.approx(0.28)
    assert measure_loaded(_marks([0.045] * 3), cores=2.0).loop_utilisation == pytest.approx(0.14)


def test_without_brinks_exact_counter_the_standard_one_is_read() -> None:
    marks = [
        (_scrape(100.0, 7.0, {ORDERS: (0, 0.0)}, cpu=TICK_CPU), 0),
        (_scrape(101.0, 7.3, {ORDERS: (50, 2.0)}, cpu=TICK_CPU), 100),
    ]
    assert measure_loaded(marks, cores=1.0).cpu_s == pytest.approx(0.003)


def test_one_stalled_second_does_not_set_the_loaded_hold() -> None:
    stage = measure_loaded(_marks([0.044, 0.210, 0.046]), cores=1.0)
    assert stage.db_hold_s[ORDERS] == pytest.approx(0.046)


def test_a_stage_that_sent_nothing_is_a_failed_probe() -> None:
    scrape = _scrape(100.0, 7.0, {ORDERS: (1_000, 33.0)})
    with pytest.raises(ProbeFailed, match="sent nothing"):
        measure_loaded([(scrape, 0), (scrape, 0)], cores=1.0)


def _stage(cpu_s: float, rho: float, holds: dict[str, float]) -> LoadedStage:
    return LoadedStage(rate_rps=100.0, cpu_s=cpu_s, loop_utilisation=rho, db_hold_s=holds)


def test_the_loaded_cpu_rescales_every_route_and_keeps_their_split() -> None:
    # At rest the mix uses 0.5 x 2 + 0.4 x 1 + 0.1 x 10 = 2.4 ms a request; under load 1.2 ms.
    orders, items, cpu = with_cpu(MIX, 0.0012)
    assert (orders.cpu_s, items.cpu_s, cpu.cpu_s) == pytest.approx((0.001, 0.0005, 0.005))
    assert with_cpu(MIX, 0.0) == MIX


def test_the_fit_puts_each_routes_curve_through_its_loaded_hold() -> None:
    stage = _stage(cpu_s=0.002, rho=0.24, holds={ORDERS: 0.045, ITEMS: 0.0011})
    orders, items, cpu = fit_loaded(MIX, stage)
    assert loaded_hold(orders.db_hold_s, orders.db_hold_growth_s, 0.24) == pytest.approx(0.045)
    assert items.db_hold_growth_s == 0.0  # shorter than at rest: noise, not a shrinking hold
    assert cpu.db_hold_growth_s == 0.0  # no pool use, nothing to fit
    assert math.fsum(d.share * d.cpu_s for d in (orders, items, cpu)) == pytest.approx(0.002)
    at_rest = predict(MIX, Capacities(4, external_connections=10)).saturation_rps
    loaded = predict((orders, items, cpu), Capacities(4, external_connections=10))
    assert loaded.bottleneck == "db_pool"
    assert loaded.saturation_rps < at_rest


def test_a_cpu_bound_mix_is_predicted_from_the_cpu_under_load() -> None:
    # Pool 16 / 5 ms: 2.3 ms of CPU an order at rest, 1.2 ms under load.
    order = (RouteDemand(ORDERS, 1.0, db_hold_s=0.0065, external_s=0.0, cpu_s=0.0023),)
    loaded = predict(fit_loaded(order, _stage(0.0012, 0.6, {})), Capacities(16, 10))
    assert loaded.bottleneck == "cpu"
    assert loaded.saturation_rps == pytest.approx(LOOP_SHARE / 0.0012)


def test_without_loop_time_there_is_no_hold_to_fit() -> None:
    fitted = fit_loaded(MIX, _stage(cpu_s=0.0, rho=0.0, holds={ORDERS: 0.05}))
    assert fitted == MIX


def _burst(busy_s: float, external_s: float, cpu_s: float) -> list[tuple[Scrape, int]]:
    """Two scrapes 2 s apart around 1,600 requests: the pool busy ``busy_s`` seconds in all,
    the external calls under way ``external_s`` seconds, the service ``cpu_s`` CPU seconds."""
    values: dict[Key, float] = {(PRECISE_CPU, ()): 10.0}
    before = Scrape(50.0, values)
    after = Scrape(
        52.0,
        {
            (PRECISE_CPU, ()): 10.0 + cpu_s,
            ("brink_db_connection_busy_seconds_total", (("route", ORDERS),)): busy_s,
            ("brink_external_request_duration_seconds_sum", ()): external_s,
        },
    )
    return [(before, 400), (after, 2_000)]


def test_a_burst_that_kept_the_loop_full_reads_its_rate_cpu_and_share() -> None:
    first, last = _burst(busy_s=2 * 3.0, external_s=2 * 1.0, cpu_s=1.6)
    full = measure_full(first, last, 37, Capacities(5, external_connections=10))
    assert full is not None
    assert (full.rate_rps, full.cpu_s) == pytest.approx((800.0, 0.001))
    assert full.service_cores == pytest.approx(0.8)
    assert full.held_back_by == "loop"
    assert full.loop_bound


@pytest.mark.parametrize(
    ("busy_s", "external_s", "cpu_s", "held_back_by"),
    [
        (2 * 4.5, 0.0, 0.4, "db_pool"),  # 4.5 of 5 connections in use, the loop 0.2 busy
        (0.0, 2 * 9.0, 0.4, "external_pool"),
        (2 * 4.6, 2 * 9.5, 0.4, "db_pool"),
        (2 * 4.4, 0.0, 0.4, "sender"),  # nothing full: the probe could not keep it busy
        (2 * 5.0, 2 * 10.0, 1.0, "loop"),  # half a core: pools that full wait for the loop
        (2 * 5.0, 0.0, 0.98, "db_pool"),
    ],
)
def test_what_held_the_full_service_back(
    busy_s: float, external_s: float, cpu_s: float, held_back_by: str
) -> None:
    first, last = _burst(busy_s, external_s, cpu_s)
    full = measure_full(first, last, 37, Capacities(5, external_connections=10))
    assert full is not None
    assert full.held_back_by == held_back_by


def test_a_burst_that_sent_nothing_or_burned_no_cpu_measures_nothing() -> None:
    first, last = _burst(busy_s=1.0, external_s=0.0, cpu_s=0.0)
    assert measure_full(first, last, 37, Capacities(5, 10)) is None
    assert measure_full(first, first, 37, Capacities(5, 10)) is None


def _full(cpu_s: float, held_back_by: Holder = "loop") -> FullLoop:
    return FullLoop(in_flight=37, rate_rps=800.0, cpu_s=cpu_s, held_back_by=held_back_by)


def test_the_model_takes_the_cpu_of_the_full_loop_only_when_the_loop_held_it_back() -> None:
    stage = _stage(cpu_s=0.0012, rho=0.12, holds={})
    assert model_cpu(stage) == 0.0012
    assert model_cpu(replace(stage, full=_full(0.0009))) == 0.0009
    assert model_cpu(replace(stage, full=_full(0.0009, "db_pool"))) == 0.0012


def test_a_light_mix_is_predicted_from_the_full_loops_cpu_and_share() -> None:
    # The window read 1.2 ms a request at 100 req/s; kept full, 0.9 ms at 0.8 of a core.
    stage = replace(_stage(cpu_s=0.0012, rho=0.12, holds={}), full=_full(0.0009))
    reads = (RouteDemand(ITEMS, 1.0, db_hold_s=0.0006, external_s=0.0, cpu_s=0.002),)
    prediction = predict(fit_loaded(reads, stage), Capacities(5, 10, loop_share=0.8))
    assert prediction.bottleneck == "cpu"
    assert prediction.saturation_rps == pytest.approx(0.8 / 0.0009)


def test_the_hold_growth_is_fitted_on_the_models_cpu_scale() -> None:
    # The window's loop use, 0.24, is on the window's CPU (2 ms); on the model's 1.5 ms it is
    # 0.18, and the fitted curve must pass through the window's hold there.
    stage = replace(_stage(cpu_s=0.002, rho=0.24, holds={ORDERS: 0.045}), full=_full(0.0015))
    orders = fit_loaded(MIX, stage)[0]
    assert loaded_hold(orders.db_hold_s, orders.db_hold_growth_s, 0.18) == pytest.approx(0.045)


def test_the_share_measured_full_is_the_cpus_capacity_only_when_the_loop_held_it_back() -> None:
    stage = _stage(cpu_s=0.0012, rho=0.12, holds={})
    caps = Capacities(5, 10)
    assert model_capacities(caps, stage) == caps
    assert model_capacities(caps, replace(stage, full=_full(0.001))).loop_share == 0.8
    assert model_capacities(caps, replace(stage, full=_full(0.001, "db_pool"))) == caps
    # A multi-threaded service can burn more than a core; the share stays at most a whole one.
    assert model_capacities(caps, replace(stage, full=_full(0.002))).loop_share == 1.0
