"""The probe's loaded stage as arithmetic: scrapes in, each route's fitted hold growth out."""

from __future__ import annotations

import pytest

from loadtests.capacity import Capacities, RouteDemand, loaded_hold, predict
from loadtests.probe import LoadedStage, ProbeFailed, fit_growth, measure_loaded
from loadtests.scrape import Key, Scrape

ORDERS, ITEMS, CPU = "/orders", "/items/{item_id}", "/cpu"
MIX = (
    RouteDemand(ORDERS, 0.5, db_hold_s=0.0328, external_s=0.0, cpu_s=0.002),
    RouteDemand(ITEMS, 0.4, db_hold_s=0.0012, external_s=0.0, cpu_s=0.001),
    RouteDemand(CPU, 0.1, db_hold_s=0.0, external_s=0.0, cpu_s=0.010),
)


def _scrape(at: float, cpu_s: float, pool: dict[str, tuple[float, float]]) -> Scrape:
    """``pool`` maps a route to (acquisitions, busy seconds) so far."""
    values: dict[Key, float] = {("process_cpu_seconds_total", ()): cpu_s}
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


def test_the_loaded_stage_reads_each_routes_hold_and_the_loop_use() -> None:
    stage = measure_loaded(_marks([0.045, 0.045, 0.045]), demands=MIX, cores=1.0)
    assert stage.rate_rps == pytest.approx(100)
    assert stage.db_hold_s == pytest.approx({ORDERS: 0.045, ITEMS: 0.0015})
    # The model's loop use: 100 req/s x (0.5 x 2 + 0.4 x 1 + 0.1 x 10 ms) = 24%.
    assert stage.loop_utilisation == pytest.approx(0.24)
    assert stage.service_cores == pytest.approx(0.28)


def test_one_stalled_second_does_not_set_the_loaded_hold() -> None:
    stage = measure_loaded(_marks([0.044, 0.210, 0.046]), demands=MIX, cores=1.0)
    assert stage.db_hold_s[ORDERS] == pytest.approx(0.046)


def test_a_stage_that_sent_nothing_is_a_failed_probe() -> None:
    scrape = _scrape(100.0, 7.0, {ORDERS: (1_000, 33.0)})
    with pytest.raises(ProbeFailed, match="sent nothing"):
        measure_loaded([(scrape, 0), (scrape, 0)], demands=MIX, cores=1.0)


def test_the_fit_puts_each_routes_curve_through_its_loaded_hold() -> None:
    stage = LoadedStage(
        rate_rps=120, loop_utilisation=0.24, service_cores=0.26,
        db_hold_s={ORDERS: 0.045, ITEMS: 0.0011},
    )  # fmt: skip
    orders, items, cpu = fit_growth(MIX, stage)
    assert loaded_hold(orders.db_hold_s, orders.db_hold_growth_s, 0.24) == pytest.approx(0.045)
    assert items.db_hold_growth_s == 0.0  # shorter than at rest: noise, not a shrinking hold
    assert cpu == MIX[2]  # no pool use, nothing to fit
    at_rest = predict(MIX, Capacities(4, external_connections=10)).saturation_rps
    loaded = predict((orders, items, cpu), Capacities(4, external_connections=10))
    assert loaded.bottleneck == "db_pool"
    assert loaded.saturation_rps < at_rest


def test_without_loop_time_there_is_nothing_to_fit() -> None:
    stage = LoadedStage(
        rate_rps=50, loop_utilisation=0.0, service_cores=0.0, db_hold_s={ORDERS: 0.05}
    )
    assert fit_growth(MIX, stage) == MIX
