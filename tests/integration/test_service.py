"""The demo service against real Postgres, a real slow API and real uvicorn processes."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator

import asyncpg
import httpx2
import pytest

from loadtests.native.postgres import PrivatePostgres
from tests.support import Served, Spawn, eventually, sample_value

pytestmark = pytest.mark.integration

# Items reserved for tests that change stock, so tests stay independent.
HOT_ITEM = 901
REPLAY_ITEM = 902
OUT_OF_STOCK_ITEM = 903


@pytest.fixture
async def client(service: Served) -> AsyncIterator[httpx2.AsyncClient]:
    async with httpx2.AsyncClient(base_url=service.base_url, timeout=30) as client:
        yield client


@pytest.fixture
async def db(postgres: PrivatePostgres) -> AsyncIterator[asyncpg.Connection]:
    connection = await asyncpg.connect(postgres.dsn)
    try:
        yield connection
    finally:
        await connection.close()


async def _set_stock(db: asyncpg.Connection, item_id: int, stock: int) -> None:
    await db.execute("DELETE FROM orders WHERE item_id = $1", item_id)
    await db.execute(
        "UPDATE items SET stock = $2, initial_stock = $2 WHERE id = $1", item_id, stock
    )


def _order(
    client: httpx2.AsyncClient, item_id: int, quantity: int = 1, key: uuid.UUID | None = None
) -> asyncio.Task[httpx2.Response]:
    return asyncio.ensure_future(
        client.post(
            "/orders",
            json={"item_id": item_id, "quantity": quantity},
            headers={"Idempotency-Key": str(key or uuid.uuid4())},
        )
    )


async def test_health_and_readiness(client: httpx2.AsyncClient) -> None:
    assert (await client.get("/healthz")).json()["status"] == "ok"
    assert (await client.get("/readyz")).json()["status"] == "ready"


async def test_item_read(client: httpx2.AsyncClient) -> None:
    response = await client.get("/items/1")
    assert response.status_code == 200
    assert response.json()["id"] == 1
    assert response.json()["name"] == "item-1"


async def test_unknown_item_is_404(client: httpx2.AsyncClient) -> None:
    response = await client.get("/items/999999")
    assert response.status_code == 404
    assert "999999" in response.json()["detail"]


async def test_shipping_quote_calls_the_slow_api(client: httpx2.AsyncClient) -> None:
    response = await client.get("/items/3/shipping-quote", params={"quantity": 2})
    assert response.status_code == 200, response.text
    quote = response.json()
    assert quote["item_id"] == 3
    assert quote["quantity"] == 2
    assert quote["total_cents"] > quote["shipping_cents"] > 0


async def test_cpu_route(client: httpx2.AsyncClient) -> None:
    response = await client.get("/cpu")
    assert response.status_code == 200
    assert len(response.json()["digest"]) == 64


async def test_order_is_committed_before_it_is_acknowledged(
    client: httpx2.AsyncClient, db: asyncpg.Connection
) -> None:
    key = uuid.uuid4()
    response = await _order(client, 5, 2, key)
    assert response.status_code == 201, response.text
    row = await db.fetchrow("SELECT item_id, quantity FROM orders WHERE idempotency_key = $1", key)
    assert row is not None
    assert (row["item_id"], row["quantity"]) == (5, 2)


async def test_concurrent_orders_on_a_hot_item_never_oversell(
    client: httpx2.AsyncClient, db: asyncpg.Connection
) -> None:
    await _set_stock(db, HOT_ITEM, 40)
    responses = await asyncio.gather(*(_order(client, HOT_ITEM) for _ in range(100)))

    statuses = Counter(response.status_code for response in responses)
    assert statuses == {201: 40, 409: 60}
    item = await db.fetchrow("SELECT stock, initial_stock FROM items WHERE id = $1", HOT_ITEM)
    assert item is not None
    stock, initial = item["stock"], item["initial_stock"]
    sold = await db.fetchval(
        "SELECT coalesce(sum(quantity), 0) FROM orders WHERE item_id = $1", HOT_ITEM
    )
    assert (stock, sold) == (0, 40)
    assert stock + sold == initial


async def test_repeated_key_returns_the_first_order_and_writes_nothing(
    client: httpx2.AsyncClient, db: asyncpg.Connection
) -> None:
    await _set_stock(db, REPLAY_ITEM, 1_000)
    key = uuid.uuid4()
    first = await _order(client, REPLAY_ITEM, 3, key)
    again = await asyncio.gather(*(_order(client, REPLAY_ITEM, 3, key) for _ in range(10)))

    assert first.status_code == 201
    assert {response.status_code for response in again} == {200}
    assert all(response.json() == first.json() for response in again)
    assert all(response.headers["Idempotent-Replayed"] == "true" for response in again)
    assert await db.fetchval("SELECT stock FROM items WHERE id = $1", REPLAY_ITEM) == 997
    count = await db.fetchval("SELECT count(*) FROM orders WHERE idempotency_key = $1", key)
    assert count == 1


async def test_concurrent_first_use_of_one_key_writes_one_order(
    client: httpx2.AsyncClient, db: asyncpg.Connection
) -> None:
    await _set_stock(db, REPLAY_ITEM, 1_000)
    key = uuid.uuid4()
    responses = await asyncio.gather(*(_order(client, REPLAY_ITEM, 1, key) for _ in range(20)))

    assert sorted(response.status_code for response in responses) == [200] * 19 + [201]
    assert len({response.json()["id"] for response in responses}) == 1
    assert await db.fetchval("SELECT stock FROM items WHERE id = $1", REPLAY_ITEM) == 999


async def test_key_reused_for_another_order_is_409(client: httpx2.AsyncClient) -> None:
    key = uuid.uuid4()
    assert (await _order(client, 6, 1, key)).status_code == 201
    response = await _order(client, 7, 1, key)
    assert response.status_code == 409
    assert "Idempotency-Key" in response.json()["detail"]


async def test_out_of_stock_is_409(client: httpx2.AsyncClient, db: asyncpg.Connection) -> None:
    await _set_stock(db, OUT_OF_STOCK_ITEM, 2)
    response = await _order(client, OUT_OF_STOCK_ITEM, 3)
    assert response.status_code == 409
    assert "2 in stock" in response.json()["detail"]


async def test_order_for_unknown_item_is_404(client: httpx2.AsyncClient) -> None:
    assert (await _order(client, 999_999)).status_code == 404


KEY = {"Idempotency-Key": "7f1d7c9e-4c3b-4d59-9a53-0b8f6f5d3a11"}
JSON = {"content-type": "application/json"}


@pytest.mark.parametrize(
    ("method", "path", "headers", "body", "status"),
    [
        ("POST", "/orders", {**KEY, **JSON}, b'{"item_id": 1,', 422),  # malformed JSON
        ("POST", "/orders", {**KEY, **JSON}, b'{"item_id": "one"}', 422),  # wrong type
        ("POST", "/orders", {**KEY, **JSON}, b'{"item_id": 1e400}', 422),  # not finite
        ("POST", "/orders", {**KEY, **JSON}, b'{"item_id": 1, "quantity": 0}', 422),
        ("POST", "/orders", {**KEY, **JSON}, b'{"item_id": 1, "quantity": 1000}', 422),
        ("POST", "/orders", {**KEY, **JSON}, b'{"item_id": 99999999999999}', 422),
        ("POST", "/orders", {**KEY, **JSON}, b'{"item_id": 1, "extra": 1}', 422),
        ("POST", "/orders", {**KEY, **JSON}, b"[]", 422),
        ("POST", "/orders", {**KEY, **JSON}, b'{"item_id": "\\u0000"}', 422),  # NUL in JSON
        ("POST", "/orders", {**KEY, **JSON}, b'{"item_id": 1\x00}', 422),  # raw NUL byte
        ("POST", "/orders", {**KEY, **JSON}, b"\xff\xfe\x00", 400),  # not UTF-8
        ("POST", "/orders", JSON, b'{"item_id": 1}', 422),  # no key
        ("POST", "/orders", {"Idempotency-Key": "x", **JSON}, b'{"item_id": 1}', 422),
        (
            "POST",
            "/orders",
            {**KEY, **JSON},
            b'{"item_id": 1, "pad": "' + b"x" * 70_000 + b'"}',
            413,
        ),
        ("GET", "/items/abc", {}, b"", 422),
        ("GET", "/items/0", {}, b"", 422),
        ("GET", "/items/-5", {}, b"", 422),
        ("GET", "/items/99999999999999999999", {}, b"", 422),
        ("GET", "/items/%00", {}, b"", 422),
        ("GET", "/items/1/shipping-quote?quantity=nan", {}, b"", 422),
        ("GET", "/items/1/shipping-quote?quantity=101", {}, b"", 422),
        ("GET", "/no/such/route", {}, b"", 404),
        ("DELETE", "/items/1", {}, b"", 405),
    ],
)
async def test_bad_input_gets_a_clear_4xx(
    client: httpx2.AsyncClient,
    method: str,
    path: str,
    headers: dict[str, str],
    body: bytes,
    status: int,
) -> None:
    response = await client.request(method, path, headers=headers, content=body)
    assert response.status_code == status, response.text
    assert response.text  # a reason, not an empty body


async def test_metrics_carry_every_named_metric(client: httpx2.AsyncClient) -> None:
    await client.get("/items/1")
    await client.get("/items/2/shipping-quote")
    await client.get("/cpu")
    text = (await client.get("/metrics")).text
    for name in (
        'brink_http_requests_total{method="GET",route="/items/{item_id}",status="200"}',
        'brink_http_request_duration_seconds_bucket{le="30.0",method="GET",route="/items/{item_id}"}',
        'brink_http_requests_in_flight{route="/metrics"} 1.0',
        "brink_db_pool_size ",
        "brink_db_pool_in_use ",
        "brink_db_pool_max 5.0",
        "brink_db_pool_waiters ",
        "brink_db_pool_acquire_wait_seconds_bucket",
        'brink_db_connection_busy_seconds_total{route="/items/{item_id}"}',
        "brink_db_pool_acquire_timeouts_total ",
        "brink_external_requests_in_flight ",
        "brink_external_connections_max 10.0",
        'brink_external_requests_total{outcome="ok"}',
        'brink_external_request_duration_seconds_bucket{le="0.1",outcome="ok"}',
        'brink_cpu_work_seconds_total{route="/cpu"}',
        "brink_event_loop_lag_seconds_bucket",
        "process_cpu_seconds_total ",
        "brink_process_cpu_seconds_total ",
        "python_gc_objects_collected_total",
        "python_info",
    ):
        assert name in text, name
    assert "/items/1" not in text.replace("/items/1/", "")  # never a raw path as a label


async def test_pool_exhaustion_waits_then_answers_a_clean_503(spawn_service: Spawn) -> None:
    service = spawn_service(
        {
            "BRINK_DB__POOL_MIN": "1",
            "BRINK_DB__POOL_MAX": "1",
            "BRINK_DB__EXTRA_LATENCY_S": "1.0",
            "BRINK_DB__ACQUIRE_TIMEOUT_S": "0.3",
        }
    )
    async with httpx2.AsyncClient(base_url=service.base_url, timeout=30) as client:
        holder = _order(client, 10)

        async def connection_taken() -> bool:
            text = (await client.get("/metrics")).text
            return sample_value(text, "brink_db_pool_in_use") == 1.0

        await eventually(connection_taken, what="the first order holding the only connection")
        started = time.perf_counter()
        refused = await client.get("/items/1")
        waited = time.perf_counter() - started
        assert (await holder).status_code == 201
        metrics = (await client.get("/metrics")).text

    assert refused.status_code == 503
    assert refused.headers["Retry-After"] == "1"
    assert "pool exhausted" in refused.json()["detail"]
    assert 0.3 <= waited < 0.9  # it waited for the acquire timeout, not for the holder
    assert "brink_db_pool_acquire_timeouts_total 1.0" in metrics


def test_bad_setting_stops_start_up_naming_it() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "demo_service"],
        env={"BRINK_DB__POOL_MAX": "-1", "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "BRINK_DB__POOL_MAX" in result.stderr
    assert "Traceback" not in result.stderr
