"""The pool knobs on a real service, live: the slow API's client resized under concurrent quotes
(no call fails, the new limit holds, the old client closes its connections, the capacity probe
reads the new size, reset brings the start-up size back), and the DB pool's floor.

Connections are counted from the outside, as the kernel sees them: the service process's
established TCP connections to the slow API's or Postgres' port (psutil).
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from urllib.parse import urlsplit

import httpx2
import psutil  # type: ignore[import-untyped]  # a dependency of Locust, without stubs
import pytest

from loadtests.mix import Mix
from loadtests.native.postgres import PrivatePostgres
from loadtests.probe import probe
from tests.conftest import ADMIN_TOKEN
from tests.support import Served, eventually, sample_value

pytestmark = pytest.mark.integration

AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
CALLERS = 30
"""Quote callers at once: more than any pool size tried, so the client's pool is always full."""
SLOW_S = 0.1
"""The slow API's latency in these tests: a call holds its connection this long."""
START_SIZE = 10
"""``BRINK_EXTERNAL__MAX_CONNECTIONS`` and ``__MAX_KEEPALIVE``'s default: the service's start."""


def _sockets(pid: int, port: int) -> set[int]:
    """The local ports of the TCP connections process ``pid`` holds open to ``port``."""
    return {
        connection.laddr.port
        for connection in psutil.Process(pid).net_connections(kind="tcp")
        if connection.raddr
        and connection.raddr.port == port
        and connection.status == psutil.CONN_ESTABLISHED
    }


def _established(pid: int, port: int) -> int:
    return len(_sockets(pid, port))


def _port(base_url: str) -> int:
    port = urlsplit(base_url).port
    assert port is not None
    return port


@pytest.fixture
async def client(service: Served, slow_api: Served) -> AsyncIterator[httpx2.AsyncClient]:
    limits = httpx2.Limits(max_connections=200)
    async with httpx2.AsyncClient(base_url=service.base_url, timeout=30, limits=limits) as client:
        yield client
        assert (await client.post("/admin/faults/reset", headers=AUTH)).status_code == 200
        reset = await client.post(slow_api.base_url + "/control/reset", headers=AUTH)
        assert reset.status_code == 200


async def _faults(client: httpx2.AsyncClient, **changes: int) -> dict[str, int]:
    response = await client.put("/admin/faults", json=changes, headers=AUTH)
    assert response.status_code == 200, response.text
    values: dict[str, int] = response.json()
    return values


async def _metric(client: httpx2.AsyncClient, url: str, name: str) -> float:
    return sample_value((await client.get(url)).text, name)


async def _samples(read: Callable[[], Awaitable[float]], duration_s: float) -> list[float]:
    """``read()`` again and again for ``duration_s``."""
    found, end = [], time.monotonic() + duration_s
    while time.monotonic() < end:
        found.append(await read())
    return found


class _Callers:
    """``CALLERS`` loops asking for shipping quotes until stopped; every status counted."""

    def __init__(self, client: httpx2.AsyncClient) -> None:
        self.client = client
        self.statuses: Counter[int] = Counter()
        self._stop = asyncio.Event()
        self._tasks = [asyncio.ensure_future(self._call(index)) for index in range(CALLERS)]

    async def _call(self, index: int) -> None:
        while not self._stop.is_set():
            response = await self.client.get(f"/items/{index + 1}/shipping-quote")
            self.statuses[response.status_code] += 1

    async def stop(self) -> None:
        self._stop.set()
        await asyncio.gather(*self._tasks)


async def test_the_client_is_resized_under_load_and_no_call_fails(
    client: httpx2.AsyncClient, service: Served, slow_api: Served
) -> None:
    control = {"base_latency_s": SLOW_S, "jitter_sigma": 0, "capacity": 10_000}
    assert (await client.put(slow_api.base_url + "/control", json=control, headers=AUTH)).is_success
    slow_metrics = slow_api.base_url + "/metrics"
    pid, port = service.process.pid, _port(slow_api.base_url)

    async def in_flight() -> float:  # calls the slow API serves now
        return await _metric(client, slow_metrics, "brink_slow_api_requests_in_flight")

    callers = _Callers(client)
    try:
        for size in (3, 8, 2, None):  # None: reset to the start-up size
            old = _sockets(pid, port)  # all the old client's: the new one does not exist yet
            if size is None:
                assert (await client.post("/admin/faults/reset", headers=AUTH)).is_success
                size = START_SIZE
            else:
                values = await _faults(client, external_pool_size=size)
                assert values["external_pool_size"] == size
            assert await _metric(client, "/metrics", "brink_external_connections_max") == size

            async def old_client_closed(old: set[int] = old) -> bool:
                return not old & _sockets(pid, port)

            # The calls under way and those queued for one of its connections finish on the
            # old client; then it closes, and its connections with it.
            await eventually(old_client_closed, timeout_s=10, what=f"the client before {size}")
            served = callers.statuses.total()
            seen = await _samples(in_flight, duration_s=0.6)
            assert max(seen) == size, seen  # the pool is used to its new limit, never past it
            assert _established(pid, port) <= size
            assert callers.statuses.total() > served  # still answering
    finally:
        await callers.stop()
    assert set(callers.statuses) == {200}, callers.statuses
    outcomes = await client.get("/metrics")
    for outcome in ("pool_timeout", "transport_error", "cancelled"):
        labels = {"outcome": outcome}
        assert sample_value(outcomes.text, "brink_external_requests_total", labels) == 0


async def test_keepalive_is_at_most_the_pool_size(
    client: httpx2.AsyncClient, service: Served, slow_api: Served
) -> None:
    pid, port = service.process.pid, _port(slow_api.base_url)
    await asyncio.gather(*(client.get(f"/items/{item}/shipping-quote") for item in range(1, 9)))
    values = await _faults(client, external_pool_size=4, external_keepalive=2)
    assert (values["external_pool_size"], values["external_keepalive"]) == (4, 2)
    burst = await asyncio.gather(
        *(client.get(f"/items/{item}/shipping-quote") for item in range(1, 17))
    )
    assert {answer.status_code for answer in burst} == {200}

    async def idle_kept() -> bool:  # the start-up client is gone; 2 of the new one's stay
        return _established(pid, port) == 2

    await eventually(idle_kept, timeout_s=10, what="2 idle connections kept")


def test_the_capacity_probe_reads_the_live_size(service: Served, slow_api: Served) -> None:
    with httpx2.Client(base_url=service.base_url, headers=AUTH, timeout=30) as admin:
        assert admin.put("/admin/faults", json={"external_pool_size": 3}).is_success
        try:
            result = probe(
                service.base_url,
                Mix({"quote": 1}),
                slow_api.base_url + "/metrics",
                min_requests=5,
                min_s=0.1,
                loaded_share=0,
            )
            assert result.capacities.external_connections == 3
        finally:
            assert admin.post("/admin/faults/reset").is_success
    assert result.capacities.pool_size == 5


async def test_the_pool_floor_opens_its_connections_and_the_old_pool_closes(
    client: httpx2.AsyncClient, service: Served, postgres: PrivatePostgres
) -> None:
    pid, pg_port = service.process.pid, postgres.port

    async def pool_size() -> float:
        return await _metric(client, "/metrics", "brink_db_pool_size")

    for floor, size in ((4, 5), (7, 7), (9, 6), (1, 5)):  # a floor above the size is the size
        values = await _faults(client, pool_min=floor, pool_size=size)
        assert (values["pool_min"], values["pool_size"]) == (floor, size)
        opened = min(floor, size)
        assert await _metric(client, "/metrics", "brink_db_pool_min") == opened
        assert await pool_size() == opened  # opened up front, before the PUT answered

        async def only_the_new_pool(opened: int = opened) -> bool:
            return _established(pid, pg_port) == opened

        await eventually(only_the_new_pool, timeout_s=10, what=f"{opened} Postgres connections")
        assert (await client.get("/items/3")).status_code == 200
    reset = await client.post("/admin/faults/reset", headers=AUTH)
    assert (reset.json()["pool_min"], reset.json()["pool_size"]) == (1, 5)


async def test_a_floor_postgres_refuses_is_a_409_and_changes_nothing(
    client: httpx2.AsyncClient, service: Served, postgres: PrivatePostgres
) -> None:
    # The private Postgres allows 200 connections: a floor of 300 cannot open.
    before = (await client.get("/admin/faults", headers=AUTH)).json()
    refused = await client.put("/admin/faults", json={"pool_size": 456, "pool_min": 300},
                               headers=AUTH)  # fmt: skip
    assert refused.status_code == 409, refused.text
    assert "Postgres refused a pool opening 300 connections" in refused.json()["detail"]
    assert (await client.get("/admin/faults", headers=AUTH)).json() == before
    assert await _metric(client, "/metrics", "brink_db_pool_max") == before["pool_size"]

    pool_size: int = before["pool_size"]

    async def no_leftover_connections() -> bool:
        return _established(service.process.pid, postgres.port) <= pool_size

    await eventually(no_leftover_connections, timeout_s=10, what="the refused pool's connections")
    assert (await client.get("/items/3")).status_code == 200
