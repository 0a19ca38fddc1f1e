"""Fault knobs: validation, apply and reset with their gauge, the docs table, the CPU burn."""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

import pytest
from prometheus_client import CollectorRegistry
from pydantic import ValidationError
from starlette.types import Message, Receive, Scope, Send

from demo_service.db import Database
from demo_service.external import ExternalApi
from demo_service.faults import (
    CpuBurnMiddleware,
    Faults,
    FaultsUpdate,
    FaultValues,
    fault_table,
)
from demo_service.metrics import ServiceMetrics
from demo_service.settings import DatabaseSettings, ExternalSettings, Settings

README = Path(__file__).parents[2] / "README.md"


class FakeDatabase:
    def __init__(self) -> None:
        self.resized: list[tuple[int, int]] = []

    async def resize(self, max_size: int, min_size: int) -> None:
        self.resized.append((max_size, min_size))


class FakeExternal:
    def __init__(self) -> None:
        self.resized: list[tuple[int, int]] = []

    def resize(self, max_connections: int, max_keepalive: int) -> None:
        self.resized.append((max_connections, max_keepalive))


def _resources() -> tuple[FakeDatabase, FakeExternal, Database, ExternalApi]:
    db, external = FakeDatabase(), FakeExternal()
    return db, external, cast(Database, db), cast(ExternalApi, external)


@pytest.fixture
def metrics() -> ServiceMetrics:
    return ServiceMetrics(CollectorRegistry())


def _active(metrics: ServiceMetrics, fault: str) -> float | None:
    return metrics.registry.get_sample_value("brink_fault_active", {"fault": fault})


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ({"db_latency_s": -0.1}, "greater than or equal to 0"),
        ({"hot_row_lock_s": 11}, "less than or equal to 10"),
        ({"hot_items": 0}, "greater than or equal to 1"),
        ({"cpu_burn_iterations": 20_000_000}, "less than or equal to 10000000"),
        ({"pool_size": 0}, "greater than or equal to 1"),
        ({"pool_size": "big"}, "valid integer"),
        ({"pool_size": None}, "valid integer"),  # absent means unchanged; null is refused
        ({"pool_min": -1}, "greater than or equal to 0"),
        ({"pool_min": 501}, "less than or equal to 500"),
        ({"external_pool_size": 0}, "greater than or equal to 1"),
        ({"external_pool_size": 1001}, "less than or equal to 1000"),
        ({"external_pool_size": True}, "not a boolean"),
        ({"external_keepalive": -1}, "greater than or equal to 0"),
        ({"external_keepalive": 1001}, "less than or equal to 1000"),
        ({"db_latency": 1}, "Extra inputs are not permitted"),
    ],
)
def test_a_bad_fault_value_is_refused_with_the_reason(body: dict[str, Any], reason: str) -> None:
    with pytest.raises(ValidationError, match=reason):
        FaultsUpdate.model_validate(body)


def test_an_update_carries_only_the_knobs_given() -> None:
    assert FaultsUpdate.model_validate({"hot_row_lock_s": 0.2}).changes() == {"hot_row_lock_s": 0.2}


def test_the_start_values_come_from_the_settings() -> None:
    db = DatabaseSettings(extra_latency_s=0.04, pool_max=7, pool_min=3)
    external = ExternalSettings(max_connections=5, max_keepalive=4)
    start = FaultValues.at_start(Settings(db=db, external=external))
    assert (start.db_latency_s, start.pool_size, start.pool_min) == (0.04, 7, 3)
    assert (start.external_pool_size, start.external_keepalive) == (5, 4)
    assert start.cpu_burn_iterations == 0


@pytest.mark.parametrize(
    ("knob", "group", "setting"),
    [
        ("db_latency_s", DatabaseSettings, "extra_latency_s"),
        ("pool_size", DatabaseSettings, "pool_max"),
        ("pool_min", DatabaseSettings, "pool_min"),
        ("external_pool_size", ExternalSettings, "max_connections"),
        ("external_keepalive", ExternalSettings, "max_keepalive"),
    ],
)
def test_a_knob_for_a_setting_has_its_default_and_bounds(
    knob: str, group: type[DatabaseSettings | ExternalSettings], setting: str
) -> None:
    row = next(row for row in fault_table() if row.name == knob)
    info = group.model_fields[setting]
    assert row.default == info.default
    assert FaultValues.model_fields[knob].metadata == info.metadata


def test_the_row_lock_hold_is_for_hot_items_only() -> None:
    holds = FaultValues(hot_row_lock_s=0.3, hot_items=5).holds()
    assert holds.row_lock_s(5) == 0.3
    assert holds.row_lock_s(6) == 0.0


async def test_apply_and_reset_follow_the_start_and_the_gauge(metrics: ServiceMetrics) -> None:
    faults = Faults(FaultValues(pool_size=4), metrics)
    fake, external, db, api = _resources()
    assert _active(metrics, "pool_size") == 0

    values = await faults.apply({"pool_size": 2, "db_latency_s": 0.05}, db, api)
    assert (values.pool_size, values.db_latency_s) == (2, 0.05)
    assert fake.resized == [(2, 1)]
    assert external.resized == []
    assert _active(metrics, "pool_size") == 1
    assert _active(metrics, "db_latency_s") == 1
    assert _active(metrics, "cpu_burn_iterations") == 0

    await faults.apply({"db_latency_s": 0.07}, db, api)
    assert fake.resized == [(2, 1)]  # the pool is rebuilt only when its size changes

    assert await faults.reset(db, api) == FaultValues(pool_size=4)
    assert fake.resized == [(2, 1), (4, 1)]
    assert all(_active(metrics, name) == 0 for name in FaultValues.model_fields)


async def test_the_pool_floor_and_the_client_sizes_rebuild_what_they_size(
    metrics: ServiceMetrics,
) -> None:
    faults = Faults(FaultValues(), metrics)
    fake, external, db, api = _resources()

    await faults.apply({"pool_min": 5}, db, api)
    assert (fake.resized, external.resized) == ([(5, 5)], [])
    assert _active(metrics, "pool_min") == 1

    await faults.apply({"external_pool_size": 5, "external_keepalive": 5}, db, api)
    assert (fake.resized, external.resized) == ([(5, 5)], [(5, 5)])  # both limits, one swap
    await faults.apply({"external_keepalive": 2}, db, api)
    assert external.resized == [(5, 5), (5, 2)]
    assert _active(metrics, "external_pool_size") == 1
    assert _active(metrics, "external_keepalive") == 1

    await faults.reset(db, api)
    assert fake.resized[-1] == (5, 1)
    assert external.resized[-1] == (10, 10)
    assert all(_active(metrics, name) == 0 for name in FaultValues.model_fields)


async def test_a_failed_resize_changes_nothing(metrics: ServiceMetrics) -> None:
    class Unreachable(FakeDatabase):
        async def resize(self, max_size: int, min_size: int) -> None:
            raise OSError("connection refused")

    faults = Faults(FaultValues(pool_size=4), metrics)
    external = FakeExternal()
    changes = {"pool_size": 8, "db_latency_s": 1, "external_pool_size": 3}
    with pytest.raises(OSError, match="refused"):
        await faults.apply(changes, cast(Database, Unreachable()), cast(ExternalApi, external))
    assert faults.values == FaultValues(pool_size=4)
    assert external.resized == []  # the client is not swapped either


def test_every_knob_is_in_the_table_and_in_the_readme() -> None:
    rows = list(fault_table())
    assert [row.name for row in rows] == list(FaultValues.model_fields)
    assert all(row.target and row.unit and row.meaning for row in rows)
    readme = README.read_text()
    for row in rows:
        assert f"`{row.name}`" in readme, row.name


async def _burn(metrics: ServiceMetrics, faults: Faults, path: str) -> float:
    seen: list[str] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append(scope["path"])

    async def receive() -> Message:
        return {"type": "http.request"}

    async def send(message: Message) -> None:
        pass

    await CpuBurnMiddleware(app, faults, metrics)({"type": "http", "path": path}, receive, send)
    assert seen == [path]
    return (
        metrics.registry.get_sample_value("brink_cpu_work_seconds_total", {"route": "<background>"})
        or 0.0
    )


async def test_the_cpu_burn_runs_before_each_request_but_not_for_metrics(
    metrics: ServiceMetrics,
) -> None:
    faults = Faults(FaultValues(cpu_burn_iterations=20_000), metrics)
    assert await _burn(metrics, faults, "/metrics") == 0
    assert await _burn(metrics, faults, "/admin/faults") == 0
    assert await _burn(metrics, faults, "/items/1") > 0
