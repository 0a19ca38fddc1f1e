"""The order transaction under the live mechanisms, in-process against the real Postgres.

A retry after an unknown commit must answer the replay, never write the order twice; DB
deadlines must cut the transaction short and never be retried.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest
from prometheus_client import CollectorRegistry

from demo_service import orders
from demo_service.db import Database, PoolExhausted
from demo_service.metrics import ServiceMetrics
from demo_service.orders import Holds, OrderRequest, submit_order
from demo_service.resilience.deadlines import DeadlineExceeded
from demo_service.resilience.runtime import Resilience
from demo_service.schema import ensure_schema
from demo_service.settings import DatabaseSettings
from loadtests.native.postgres import PrivatePostgres

pytestmark = pytest.mark.integration

ITEM = 904  # reserved for this module


@pytest.fixture
async def wired(postgres: PrivatePostgres) -> AsyncIterator[tuple[Database, Resilience]]:
    metrics = ServiceMetrics(CollectorRegistry())
    resilience = Resilience(metrics.resilience, "resilient", {"retry": {"base_delay_s": 0.001}})
    settings = DatabaseSettings(dsn=postgres.dsn, pool_min=1, pool_max=1)
    db = await Database.open(settings, metrics, lambda: resilience.deadlines.db_acquire)
    async with db.connection() as connection:
        await ensure_schema(connection, settings)
    try:
        yield db, resilience
    finally:
        await db.close()


async def _count(db: Database, key: uuid.UUID) -> Any:
    async with db.connection() as connection:
        return await connection.fetchval(
            "SELECT count(*) FROM orders WHERE idempotency_key = $1", key
        )


async def _stock(db: Database) -> Any:
    async with db.connection() as connection:
        return await connection.fetchval("SELECT stock FROM items WHERE id = $1", ITEM)


async def test_a_retry_after_an_unknown_commit_answers_the_replay(
    wired: tuple[Database, Resilience], monkeypatch: pytest.MonkeyPatch
) -> None:
    db, resilience = wired
    place, attempts = orders._place, 0

    async def ack_lost_after_commit(*args: Any) -> tuple[orders.Order, bool]:
        nonlocal attempts
        attempts += 1
        result = await place(*args)
        if attempts == 1:  # committed, but the connection died before we heard
            raise ConnectionResetError("connection lost after COMMIT")
        return result

    monkeypatch.setattr(orders, "_place", ack_lost_after_commit)
    stock = await _stock(db)
    request = OrderRequest(ITEM, 2, uuid.uuid4())
    order, created = await submit_order(db, resilience, request)

    assert attempts == 2
    assert not created  # the retry found the committed order: a replay
    assert order.idempotency_key == request.idempotency_key
    assert await _count(db, request.idempotency_key) == 1
    assert await _stock(db) == stock - 2


async def test_a_statement_deadline_cuts_the_hold_and_is_not_retried(
    wired: tuple[Database, Resilience],
) -> None:
    db, resilience = wired
    resilience.update(None, {"deadlines": {"db_statement_s": 0.05}})
    request = OrderRequest(ITEM, 1, uuid.uuid4())
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(DeadlineExceeded) as caught:
        await submit_order(db, resilience, request, Holds(extra_latency_s=2.0))
    assert caught.value.stage == "db_statement"
    assert loop.time() - started < 1.0
    assert await _count(db, request.idempotency_key) == 0


async def test_a_held_row_lock_is_cut_by_the_statement_deadline(
    wired: tuple[Database, Resilience], postgres: PrivatePostgres
) -> None:
    db, resilience = wired
    resilience.update(None, {"deadlines": {"db_statement_s": 0.1}})
    blocker = await asyncpg.connect(postgres.dsn)
    try:
        async with blocker.transaction():
            await blocker.execute("SELECT stock FROM items WHERE id = $1 FOR UPDATE", ITEM)
            with pytest.raises(DeadlineExceeded, match="db_statement"):
                await submit_order(db, resilience, OrderRequest(ITEM, 1, uuid.uuid4()))
    finally:
        await blocker.close()


async def test_the_acquire_deadline_answers_pool_exhausted(
    wired: tuple[Database, Resilience],
) -> None:
    db, resilience = wired
    resilience.update(None, {"deadlines": {"db_acquire_s": 0.05}})
    async with db.connection():  # the pool's only connection
        with pytest.raises(PoolExhausted, match=r"within 0\.05 s"):
            async with db.connection():
                pass
    resilience.update(None, {"deadlines": {"db_acquire_s": 0}})  # unbounded: waits its turn
    async with db.connection():
        waiter = asyncio.ensure_future(_stock(db))
        done, _ = await asyncio.wait({waiter}, timeout=0.2)  # 4x the old deadline: still waiting
        assert not done
    assert await waiter > 0
