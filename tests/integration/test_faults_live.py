"""Service-side faults on a real service: each knob does what it says, live."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator

import httpx2
import pytest

from tests.conftest import ADMIN_TOKEN
from tests.support import Served, eventually, sample_value

pytestmark = pytest.mark.integration

AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


@pytest.fixture
async def client(service: Served) -> AsyncIterator[httpx2.AsyncClient]:
    limits = httpx2.Limits(max_connections=200)
    async with httpx2.AsyncClient(base_url=service.base_url, timeout=30, limits=limits) as client:
        yield client
        assert (await client.post("/admin/faults/reset", headers=AUTH)).status_code == 200


async def _faults(client: httpx2.AsyncClient, **changes: float) -> None:
    response = await client.put("/admin/faults", json=changes, headers=AUTH)
    assert response.status_code == 200, response.text


async def _timed_order(client: httpx2.AsyncClient, item_id: int) -> tuple[int, float]:
    started = time.perf_counter()
    response = await client.post(
        "/orders", json={"item_id": item_id}, headers={"Idempotency-Key": str(uuid.uuid4())}
    )
    return response.status_code, time.perf_counter() - started


async def _metric(client: httpx2.AsyncClient, name: str, labels: dict[str, str] | None) -> float:
    return sample_value((await client.get("/metrics")).text, name, labels)


async def test_db_latency_holds_each_order(client: httpx2.AsyncClient) -> None:
    await _faults(client, db_latency_s=0.25)
    status, elapsed = await _timed_order(client, 31)
    assert status == 201
    assert elapsed >= 0.25
    await _faults(client, db_latency_s=0)
    assert (await _timed_order(client, 31))[1] < 0.25


async def test_a_hot_row_lock_queues_orders_of_hot_items_only(client: httpx2.AsyncClient) -> None:
    await _faults(client, hot_row_lock_s=0.3, hot_items=8)
    hot = await asyncio.gather(*(_timed_order(client, 8) for _ in range(3)))
    assert [status for status, _ in hot] == [201] * 3
    # Each holds the row 0.3 s: the three queue behind one another on the same row.
    assert max(elapsed for _, elapsed in hot) >= 0.85
    cold = await asyncio.gather(*(_timed_order(client, 9) for _ in range(3)))
    assert [status for status, _ in cold] == [201] * 3
    assert max(elapsed for _, elapsed in cold) < 0.3


async def test_cpu_burn_costs_every_request(client: httpx2.AsyncClient) -> None:
    labels = {"route": "/items/{item_id}"}
    before = await _metric(client, "brink_cpu_work_seconds_total", labels)
    await _faults(client, cpu_burn_iterations=200_000)  # tens of ms of PBKDF2
    started = time.perf_counter()
    assert (await client.get("/items/1")).status_code == 200
    elapsed = time.perf_counter() - started
    burnt = await _metric(client, "brink_cpu_work_seconds_total", labels) - before
    assert 0.01 <= burnt <= elapsed  # the request paid for it on the event loop
    await _faults(client, cpu_burn_iterations=0)
    await client.get("/items/1")
    assert await _metric(client, "brink_cpu_work_seconds_total", labels) - before == burnt


async def test_pool_resize_under_load_loses_no_request(client: httpx2.AsyncClient) -> None:
    await _faults(client, db_latency_s=0.02)  # orders hold their connection across swaps
    stop = asyncio.Event()
    statuses: Counter[int] = Counter()

    async def worker(index: int) -> None:
        while not stop.is_set():
            if index % 2:
                status = (await client.get(f"/items/{index + 1}")).status_code
            else:
                status = (await _timed_order(client, 40 + index))[0]
            statuses[status] += 1

    workers = [asyncio.ensure_future(worker(index)) for index in range(40)]
    try:
        for size in (2, 8, 3, 6):
            await _faults(client, pool_size=size)
            assert await _metric(client, "brink_db_pool_max", None) == size

            async def served(on: int = statuses.total() + 40) -> bool:  # by the new pool
                return statuses.total() >= on

            await eventually(served, timeout_s=10, what=f"40 answers with a pool of {size}")
        await client.post("/admin/faults/reset", headers=AUTH)
        assert await _metric(client, "brink_db_pool_max", None) == 5
    finally:
        stop.set()
        await asyncio.gather(*workers)
    assert set(statuses) <= {200, 201}, statuses
    assert statuses.total() >= 160
