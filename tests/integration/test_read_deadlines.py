"""Reads run under the live ``db_statement`` deadline too (issue 4): a read stuck behind a lock
answers 503 + ``Retry-After`` instead of holding its pool connection for as long as the lock.

Real Postgres: another session holds ``ACCESS EXCLUSIVE`` on ``items``, so the routes' plain
``SELECT`` waits for it. Under a deadline the read is cut and counted; in ``fragile`` (no
deadline) the same read just waits for the lock.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg
import httpx2
import pytest

from loadtests.native.postgres import PrivatePostgres
from tests.support import Spawn, sample_value

pytestmark = pytest.mark.integration

DEADLINE_S = 0.3


@asynccontextmanager
async def items_locked(postgres: PrivatePostgres) -> AsyncIterator[None]:
    connection = await asyncpg.connect(postgres.dsn)
    try:
        async with connection.transaction():
            await connection.execute("LOCK TABLE items IN ACCESS EXCLUSIVE MODE")
            yield
    finally:
        await connection.close()


async def test_a_read_stuck_behind_a_lock_is_cut_at_the_statement_deadline(
    spawn_service: Spawn, spawn_slow_api: Spawn, postgres: PrivatePostgres
) -> None:
    slow = spawn_slow_api()
    served = spawn_service(
        {
            "BRINK_EXTERNAL__URL": slow.base_url,
            "BRINK_RESILIENCE__PRESET": "resilient",
            "BRINK_RESILIENCE__DEADLINES__DB_STATEMENT_S": str(DEADLINE_S),
        }
    )
    async with httpx2.AsyncClient(base_url=served.base_url, timeout=10) as client:
        async with items_locked(postgres):
            for path in ("/items/1", "/items/1/shipping-quote"):
                started = time.perf_counter()
                answer = await client.get(path)
                elapsed = time.perf_counter() - started
                assert answer.status_code == 503, answer.text
                assert answer.headers["Retry-After"] == "1"
                assert "db_statement deadline" in answer.json()["detail"]
                assert DEADLINE_S <= elapsed < DEADLINE_S + 2
        metrics = (await client.get("/metrics")).text
        assert (
            sample_value(metrics, "brink_deadline_exceeded_total", {"stage": "db_statement"}) == 2
        )
        for _ in range(6):  # more than the pool: every cut connection came back usable
            assert (await client.get("/items/1")).status_code == 200


async def test_without_a_deadline_the_same_read_waits_for_the_lock(
    spawn_service: Spawn, postgres: PrivatePostgres
) -> None:
    served = spawn_service({"BRINK_RESILIENCE__PRESET": "fragile"})
    hold_s = 0.6
    async with httpx2.AsyncClient(base_url=served.base_url, timeout=10) as client:
        async with items_locked(postgres):
            started = time.perf_counter()
            read = asyncio.create_task(client.get("/items/1"))
            await asyncio.sleep(hold_s)  # the lock's hold: the thing under test, not a wait
            assert not read.done()
        answer = await read
        assert answer.status_code == 200
        assert time.perf_counter() - started >= hold_s
