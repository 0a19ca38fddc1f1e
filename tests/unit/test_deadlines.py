"""Deadlines: client-side scopes, the statement_timeout setting and Postgres's cancellation.

Expiry tests await something that never completes under a tiny deadline: deterministic, no sleeps.
"""

from __future__ import annotations

import asyncio
from typing import Any, cast

import asyncpg
import pytest
from prometheus_client import CollectorRegistry

from demo_service.metrics import ResilienceMetrics, ServiceMetrics
from demo_service.resilience.deadlines import (
    Deadline,
    DeadlineExceeded,
    Deadlines,
    is_statement_timeout,
)

TINY = 0.001
STATEMENT_TIMEOUT = "canceling statement due to statement timeout"


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


@pytest.fixture
def metrics(registry: CollectorRegistry) -> ResilienceMetrics:
    return ServiceMetrics(registry).resilience


def exceeded(registry: CollectorRegistry, stage: str) -> float:
    return registry.get_sample_value("brink_deadline_exceeded_total", {"stage": stage}) or 0.0


async def forever() -> None:
    await asyncio.Event().wait()


class FakeConnection:
    """What ``server_side`` uses of an asyncpg connection."""

    def __init__(self, in_transaction: bool = True) -> None:
        self.in_transaction = in_transaction
        self.executed: list[tuple[str, tuple[Any, ...]]] = []

    def is_in_transaction(self) -> bool:
        return self.in_transaction

    async def execute(self, query: str, *args: Any) -> str:
        self.executed.append((query, args))
        return "SELECT 1"


def connection(fake: FakeConnection) -> asyncpg.Connection:
    return cast(asyncpg.Connection, fake)


async def test_an_expired_deadline_raises_a_typed_error_and_counts(registry, metrics) -> None:
    deadlines = Deadlines(metrics, db_acquire=1.0, db_statement=1.0, external=TINY)
    with pytest.raises(DeadlineExceeded) as caught:
        async with deadlines.external():
            await forever()
    error = caught.value
    assert (error.stage, error.seconds) == ("external", TINY)
    assert isinstance(error, TimeoutError)
    assert isinstance(error.__cause__, TimeoutError)
    assert str(error) == "external deadline of 0.001 s exceeded"
    assert exceeded(registry, "external") == 1
    assert exceeded(registry, "db_acquire") == 0


async def test_work_within_the_deadline_is_untouched(registry, metrics) -> None:
    deadline = Deadline("db_acquire", 60.0, metrics)
    async with deadline():
        await asyncio.sleep(0)
    async with deadline():  # a value: every scope is fresh
        await asyncio.sleep(0)
    assert exceeded(registry, "db_acquire") == 0


async def test_no_deadline_is_a_no_op(registry, metrics) -> None:
    deadlines = Deadlines.off(metrics)
    for deadline in (deadlines.db_acquire, deadlines.db_statement, deadlines.external):
        assert deadline.seconds is None
        task = asyncio.create_task(_inside(deadline))
        for _ in range(5):
            await asyncio.sleep(0)
        assert not task.done()  # nothing cancels it
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert deadlines.db_statement.server_settings() == {}


async def _inside(deadline: Deadline) -> None:
    async with deadline():
        await forever()


async def test_a_timeout_from_inside_is_not_ours(registry, metrics) -> None:
    with pytest.raises(TimeoutError) as caught:
        async with Deadline("external", 60.0, metrics)():
            raise TimeoutError("the client's own read timeout")
    assert type(caught.value) is TimeoutError
    assert exceeded(registry, "external") == 0


async def test_nested_deadlines_count_once_for_the_stage_that_expired(registry, metrics) -> None:
    outer = Deadline("db_acquire", 60.0, metrics)
    inner = Deadline("external", TINY, metrics)
    with pytest.raises(DeadlineExceeded) as caught:
        async with outer(), inner():
            await forever()
    assert caught.value.stage == "external"
    assert exceeded(registry, "external") == 1
    assert exceeded(registry, "db_acquire") == 0


async def test_an_outer_cancellation_stays_a_cancellation(registry, metrics) -> None:
    started = asyncio.Event()

    async def work() -> None:
        async with Deadline("external", 60.0, metrics)():
            started.set()
            await forever()

    task = asyncio.create_task(work())
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert exceeded(registry, "external") == 0


@pytest.mark.parametrize("seconds", [0.0, -1.0])
def test_a_deadline_must_be_positive(metrics, seconds: float) -> None:
    with pytest.raises(ValueError, match="positive or None"):
        Deadline("external", seconds, metrics)


@pytest.mark.parametrize(
    ("seconds", "setting"), [(1.5, "1500ms"), (0.25, "250ms"), (0.0001, "1ms"), (30, "30000ms")]
)
def test_pool_level_statement_timeout(metrics, seconds: float, setting: str) -> None:
    deadline = Deadline("db_statement", seconds, metrics)
    assert deadline.server_settings() == {"statement_timeout": setting}


async def test_transaction_local_statement_timeout(metrics) -> None:
    fake = FakeConnection()
    async with Deadline("db_statement", 0.25, metrics).server_side(connection(fake)):
        pass
    assert fake.executed == [("SELECT set_config('statement_timeout', $1, true)", ("250ms",))]

    off = FakeConnection()
    async with Deadline("db_statement", None, metrics).server_side(connection(off)):
        pass
    assert off.executed == []


async def test_transaction_local_timeout_needs_a_transaction(metrics) -> None:
    fake = FakeConnection(in_transaction=False)
    with pytest.raises(RuntimeError, match="needs a transaction"):
        async with Deadline("db_statement", 0.25, metrics).server_side(connection(fake)):
            pass  # pragma: no cover
    assert fake.executed == []


@pytest.mark.parametrize("with_connection", [True, False])
async def test_postgres_statement_timeout_becomes_deadline_exceeded(
    registry, metrics, with_connection: bool
) -> None:
    deadline = Deadline("db_statement", 0.25, metrics)
    conn = connection(FakeConnection()) if with_connection else None
    with pytest.raises(DeadlineExceeded) as caught:
        async with deadline.server_side(conn):
            raise asyncpg.QueryCanceledError(STATEMENT_TIMEOUT)
    assert (caught.value.stage, caught.value.seconds) == ("db_statement", 0.25)
    assert isinstance(caught.value.__cause__, asyncpg.QueryCanceledError)
    assert exceeded(registry, "db_statement") == 1


async def test_a_pool_level_timeout_is_mapped_even_when_the_deadline_is_off(
    registry, metrics
) -> None:
    with pytest.raises(DeadlineExceeded, match=r"^db_statement deadline exceeded$"):
        async with Deadline("db_statement", None, metrics).server_side():
            raise asyncpg.QueryCanceledError(STATEMENT_TIMEOUT)
    assert exceeded(registry, "db_statement") == 1


@pytest.mark.parametrize(
    "error",
    [
        asyncpg.QueryCanceledError("canceling statement due to user request"),
        asyncpg.UniqueViolationError("duplicate key"),
        ValueError("bug"),
    ],
)
async def test_other_errors_pass_through(registry, metrics, error: Exception) -> None:
    with pytest.raises(type(error)) as caught:
        async with Deadline("db_statement", 0.25, metrics).server_side():
            raise error
    assert caught.value is error
    assert not is_statement_timeout(error)
    assert exceeded(registry, "db_statement") == 0


def test_deadlines_describe_themselves(metrics) -> None:
    deadlines = Deadlines(metrics, db_acquire=2.0, db_statement=None, external=0.5)
    assert repr(deadlines) == (
        "Deadlines(Deadline('db_acquire', 2.0), Deadline('db_statement', None), "
        "Deadline('external', 0.5))"
    )
