"""The probe's loaded stage as arithmetic: scrapes in, the CPU and each route's hold growth out."""

from __future__ import annotations

import math

import pytest

from loadtests.capacity import LOOP_SHARE, Capacities, RouteDemand, loaded_hold, predict
from loadtests.probe import LoadedStage, ProbeFailed, fit_loaded, measure_loaded, with_cpu
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
