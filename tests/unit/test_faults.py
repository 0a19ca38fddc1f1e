"""Fault knobs: validation, apply and reset with their gauge, the docs table, the CPU burn."""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

import pytest
from prometheus_client import CollectorRegistry
from pydantic import ValidationError
from starlette.types import Message, Receive, Scope, Send

from demo_service.db import Database
from demo_service.faults import (
    CpuBurnMiddleware,
    Faults,
    FaultsUpdate,
    FaultValues,
    fault_table,
)
from demo_service.metrics import ServiceMetrics
from demo_service.settings import DatabaseSettings

README = Path(__file__).parents[2] / "README.md"


class FakeDatabase:
    def __init__(self, max_size: int) -> None:
        self.max_size = max_size
        self.resized: list[int] = []

    async def resize(self, max_size: int) -> None:
        self.resized.append(max_size)
        self.max_size = max_size


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
        ({"db_latency": 1}, "Extra inputs are not permitted"),
    ],
)
def test_a_bad_fault_value_is_refused_with_the_reason(body: dict[str, Any], reason: str) -> None:
    with pytest.raises(ValidationError, match=reason):
        FaultsUpdate.model_validate(body)


def test_an_update_carries_only_the_knobs_given() -> None:
    assert FaultsUpdate.model_validate({"hot_row_lock_s": 0.2}).changes() == {"hot_row_lock_s": 0.2}


def test_the_start_values_come_from_the_settings() -> None:
    start = FaultValues.at_start(DatabaseSettings(extra_latency_s=0.04, pool_max=7))
    assert (start.db_latency_s, start.pool_size, start.cpu_burn_iterations) == (0.04, 7, 0)


def test_the_row_lock_hold_is_for_hot_items_only() -> None:
    holds = FaultValues(hot_row_lock_s=0.3, hot_items=5).holds()
    assert holds.row_lock_s(5) == 0.3
    assert holds.row_lock_s(6) == 0.0


async def test_apply_and_reset_follow_the_start_and_the_gauge(metrics: ServiceMetrics) -> None:
    faults = Faults(FaultValues(pool_size=4), metrics)
    fake = FakeDatabase(4)
    db = cast(Database, fake)
    assert _active(metrics, "pool_size") == 0

    values = await faults.apply({"pool_size": 2, "db_latency_s": 0.05}, db)
    assert (values.pool_size, values.db_latency_s) == (2, 0.05)
    assert fake.resized == [2]
    assert _active(metrics, "pool_size") == 1
    assert _active(metrics, "db_latency_s") == 1
    assert _active(metrics, "cpu_burn_iterations") == 0

    await faults.apply({"db_latency_s": 0.07}, db)
    assert fake.resized == [2]  # the pool is rebuilt only when its size changes

    assert await faults.reset(db) == FaultValues(pool_size=4)
    assert fake.resized == [2, 4]
    assert all(_active(metrics, name) == 0 for name in FaultValues.model_fields)


async def test_a_failed_resize_changes_nothing(metrics: ServiceMetrics) -> None:
    class Unreachable(FakeDatabase):
        async def resize(self, max_size: int) -> None:
            raise OSError("connection refused")

    faults = Faults(FaultValues(pool_size=4), metrics)
    with pytest.raises(OSError, match="refused"):
        await faults.apply({"pool_size": 8, "db_latency_s": 1}, cast(Database, Unreachable(4)))
    assert faults.values == FaultValues(pool_size=4)


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
