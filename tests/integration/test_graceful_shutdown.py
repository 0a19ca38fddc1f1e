"""Graceful shutdown on SIGTERM: no new requests admitted, those in flight drained within the
deadline, and no acknowledged order lost.

A burst of concurrent orders, each holding its pool connection (the ``db_latency_s`` fault), is
in flight when the service gets SIGTERM; some hold a connection, the rest wait for one. Every
order answered 201 must be in the database, and with a drain deadline longer than the burst
every request in flight must have been answered. The slow API shows the deadline itself: a call
hanging on an outage does not keep the process alive past ``BRINK_SERVER__DRAIN_TIMEOUT_S``.
"""

from __future__ import annotations

import asyncio
import signal
import time
import uuid

import asyncpg
import httpx2
import pytest

from loadtests.native.postgres import PrivatePostgres
from tests.conftest import ADMIN_TOKEN
from tests.support import Served, Spawn, eventually, sample_value

pytestmark = pytest.mark.integration

AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
BURST = 24
POOL = 8
HOLD_S = 1.5
"""Each order's hold: three waves of 8 take ~4.5 s, well inside the 10 s drain deadline."""


async def _in_flight(client: httpx2.AsyncClient, route: str) -> float:
    text = (await client.get("/metrics")).text
    return sample_value(text, "brink_http_requests_in_flight", {"route": route})


async def _listener_closed(base_url: str) -> bool:
    try:
        async with httpx2.AsyncClient(base_url=base_url, timeout=1) as fresh:
            await fresh.get("/healthz")
    except httpx2.TransportError:
        return True
    return False


async def _exited(served: Served) -> bool:
    return not served.process.running()


async def test_sigterm_drains_in_flight_orders_and_loses_none(
    spawn_service: Spawn, postgres: PrivatePostgres
) -> None:
    served = spawn_service({"BRINK_DB__POOL_MAX": str(POOL), "BRINK_DB__POOL_MIN": str(POOL)})
    limits = httpx2.Limits(max_connections=BURST + 2)
    async with httpx2.AsyncClient(base_url=served.base_url, timeout=30, limits=limits) as client:
        fault = await client.put("/admin/faults", json={"db_latency_s": HOLD_S}, headers=AUTH)
        assert fault.status_code == 200, fault.text
        keys = [uuid.uuid4() for _ in range(BURST)]

        async def order(key: uuid.UUID) -> httpx2.Response | Exception:
            try:
                return await client.post(
                    "/orders", json={"item_id": 7}, headers={"Idempotency-Key": str(key)}
                )
            except httpx2.TransportError as exc:
                return exc

        burst = [asyncio.create_task(order(key)) for key in keys]
        await eventually(
            lambda: _in_flight_is(client, BURST), timeout_s=10, what="the whole burst in flight"
        )
        terminated = time.monotonic()
        served.process.signal(signal.SIGTERM)

        await eventually(lambda: _listener_closed(served.base_url), 5, "listener closed")
        closed_s = time.monotonic() - terminated
        assert not all(task.done() for task in burst), "the burst ended before the check"

        answers = await asyncio.gather(*burst)
        await eventually(lambda: _exited(served), 15, "the service exited")
        drain_s = time.monotonic() - terminated

    acknowledged = {
        key
        for key, answer in zip(keys, answers, strict=True)
        if isinstance(answer, httpx2.Response) and answer.status_code in (200, 201)
    }
    connection = await asyncpg.connect(postgres.dsn)
    try:
        rows = await connection.fetch(
            "SELECT idempotency_key FROM orders WHERE idempotency_key = ANY($1::uuid[])", keys
        )
    finally:
        await connection.close()
    stored = {row["idempotency_key"] for row in rows}
    print(
        f"\nSIGTERM with {BURST} orders in flight (pool {POOL}, {HOLD_S} s hold): listener closed"
        f" after {closed_s:.2f} s, drained and exited after {drain_s:.2f} s;"
        f" {len(acknowledged)} acknowledged, {len(stored)} stored"
    )
    assert acknowledged - stored == set(), "acknowledged orders lost"
    assert acknowledged == set(keys), [a for a in answers if not isinstance(a, httpx2.Response)]
    assert served.process.returncode in (0, -signal.SIGTERM)  # uvicorn re-raises the signal
    assert drain_s < 10 + 5  # the deadline plus a generous margin for a loaded box


async def _in_flight_is(client: httpx2.AsyncClient, count: int) -> bool:
    return await _in_flight(client, "/orders") >= count


async def test_the_drain_deadline_bounds_a_hanging_request(spawn_slow_api: Spawn) -> None:
    drain_s = 1.0
    served = spawn_slow_api({"BRINK_SERVER__DRAIN_TIMEOUT_S": str(drain_s)})
    async with httpx2.AsyncClient(base_url=served.base_url, timeout=30) as client:
        hang = await client.put("/control", json={"outage": "hang"}, headers=AUTH)
        assert hang.status_code == 200
        call = asyncio.create_task(client.get("/quote", params={"item_id": 1}))

        async def hanging() -> bool:
            text = (await client.get("/metrics")).text
            return sample_value(text, "brink_slow_api_requests_in_flight") >= 1

        await eventually(hanging, 10, "the call hanging")
        terminated = time.monotonic()
        served.process.signal(signal.SIGTERM)
        await eventually(lambda: _exited(served), 10, "the slow API exited")
        exited_s = time.monotonic() - terminated
        cut = await call
    print(f"\nslow API with a hanging call exited {exited_s:.2f} s after SIGTERM")
    assert cut.status_code == 503  # cut at the deadline: told to come back, not a bare 500
    assert cut.headers["Retry-After"] == "1"
    assert "shutting down" in cut.json()["detail"]
    assert drain_s <= exited_s < drain_s + 5
