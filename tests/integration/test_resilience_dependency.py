"""Breaker, bulkhead and attempt deadlines against a real slow API; faults set via ``/control``."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Mapping
from typing import Any

import httpx2
import pytest
from prometheus_client import CollectorRegistry

from demo_service.external import ExternalApi, ExternalError
from demo_service.metrics import ServiceMetrics
from demo_service.resilience.deadlines import DeadlineExceeded
from demo_service.resilience.runtime import Resilience
from demo_service.settings import ExternalSettings
from tests.conftest import ADMIN_TOKEN
from tests.support import Served, Spawn, eventually, sample_value

pytestmark = pytest.mark.integration

AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
QUOTE = "/items/1/shipping-quote"


@pytest.fixture
async def control(slow_api: Served) -> AsyncIterator[httpx2.AsyncClient]:
    """The slow API's control endpoint; its knobs are reset after each test."""
    async with httpx2.AsyncClient(base_url=slow_api.base_url, headers=AUTH, timeout=10) as client:
        yield client
        assert (await client.post("/control/reset")).status_code == 200


def _service(spawn_service: Spawn, slow_api: Served, **resilience: str) -> Served:
    env = {"BRINK_EXTERNAL__URL": slow_api.base_url}
    env.update({f"BRINK_RESILIENCE__{name.upper()}": value for name, value in resilience.items()})
    return spawn_service(env)


async def _metric(client: httpx2.AsyncClient, name: str, labels: Mapping[str, str]) -> float:
    return sample_value((await client.get("/metrics")).text, name, dict(labels))


async def test_the_breaker_opens_on_an_outage_and_recovers_after_it(
    spawn_service: Spawn, slow_api: Served, control: httpx2.AsyncClient
) -> None:
    service = _service(
        spawn_service, slow_api, preset="resilient", retry__policy="none",
        breaker__window="4", breaker__min_calls="4", breaker__cooldown_s="0.3",
    )  # fmt: skip
    target = {"target": "external"}
    async with httpx2.AsyncClient(base_url=service.base_url, timeout=10) as client:
        assert (await client.get(QUOTE)).status_code == 200
        await control.put("/control", json={"error_rate": 1.0})

        async def refused_by_the_breaker() -> bool:
            response = await client.get(QUOTE)
            assert response.status_code in (502, 503), response.text
            return response.status_code == 503

        await eventually(refused_by_the_breaker, what="the breaker opening")
        refused = await client.get(QUOTE)
        assert refused.status_code == 503
        assert "circuit breaker for external is open" in refused.json()["detail"]
        assert int(refused.headers["Retry-After"]) >= 1
        assert await _metric(client, "brink_breaker_state", target) == 2
        assert await _metric(client, "brink_breaker_rejected_total", target) >= 2

        await control.post("/control/reset")  # the outage ends

        async def served_again() -> bool:
            return (await client.get(QUOTE)).status_code == 200

        await eventually(served_again, what="the breaker closing after the outage")
        assert await _metric(client, "brink_breaker_state", target) == 0
        for state in ("open", "half_open", "closed"):
            labels = {**target, "to": state}
            assert await _metric(client, "brink_breaker_transitions_total", labels) >= 1, state


async def _timed_get(client: httpx2.AsyncClient, path: str) -> tuple[int, float]:
    started = time.perf_counter()
    response = await client.get(path)
    return response.status_code, time.perf_counter() - started


async def test_the_bulkhead_keeps_db_routes_fast_while_the_dependency_hangs(
    spawn_service: Spawn, slow_api: Served, control: httpx2.AsyncClient
) -> None:
    # Only shedding and the bulkhead: no deadline, retry or breaker to rescue the hung calls.
    service = _service(
        spawn_service, slow_api, preset="resilient", deadlines__external_s="0",
        retry__policy="none", breaker__enabled="false",
        shedding__limit="20", bulkhead__limit="4",
    )  # fmt: skip
    limits = httpx2.Limits(max_connections=200)
    async with httpx2.AsyncClient(base_url=service.base_url, timeout=30, limits=limits) as client:
        await control.put("/control", json={"outage": "hang"})
        hung: list[asyncio.Future[Any]] = []
        quotes = [asyncio.ensure_future(client.get(QUOTE)) for _ in range(30)]
        hung += quotes

        async def bulkhead_full() -> bool:
            return sum(task.done() for task in quotes) == 26  # 4 inside, 26 refused at once

        await eventually(bulkhead_full, what="the bulkhead refusing the calls beyond 4")
        refused = [task.result() for task in quotes if task.done()]
        assert {response.status_code for response in refused} == {503}
        assert "bulkhead 'external' full" in refused[0].json()["detail"]
        reads = [await _timed_get(client, "/items/2") for _ in range(20)]
        assert {status for status, _ in reads} == {200}
        assert max(elapsed for _, elapsed in reads) < 0.5  # vs. never, for the hung calls

        # Bulkhead off, live: the hung calls now take every admission slot.
        body = {"bulkhead": {"enabled": False}}
        assert (await client.put("/admin/resilience", json=body, headers=AUTH)).status_code == 200
        hung += [asyncio.ensure_future(client.get(QUOTE)) for _ in range(30)]

        async def admission_full() -> bool:
            return await _metric(client, "brink_admission_in_flight", {}) == 20

        await eventually(admission_full, what="hung calls filling the admission limit")
        starved = await client.get("/items/2")
        assert starved.status_code == 503
        assert starved.json()["detail"] == "in_flight_limit"

        await control.post("/control/reset")  # the hang ends: every call held finishes
        answers = await asyncio.gather(*hung)
        assert {response.status_code for response in answers} <= {200, 503}


async def test_attempt_deadlines_under_pool_contention_leak_no_connection(
    spawn_slow_api: Spawn,
) -> None:
    """The FIELD-NOTES httpx trap through the service's own deadline path (encode/httpcore#1093)."""
    slow = spawn_slow_api(
        {"BRINK_SLOW_API__BASE_LATENCY_S": "0.05", "BRINK_SLOW_API__JITTER_SIGMA": "1.0"}
    )
    metrics = ServiceMetrics(CollectorRegistry())
    only_deadlines: dict[str, dict[str, Any]] = {
        "retry": {"policy": "none"},
        "breaker": {"enabled": False},
        "bulkhead": {"enabled": False},
    }
    resilience = Resilience(metrics.resilience, "resilient", only_deadlines)
    settings = ExternalSettings(
        url=slow.base_url, max_connections=4, max_keepalive=4, pool_timeout_s=2.0
    )
    api = ExternalApi.from_settings(settings, metrics, guard=resilience)
    try:
        # Ten waves of 40 calls on 4 connections, each wave with a longer deadline: attempts
        # are cut while waiting for a connection, while connecting and while reading.
        for wave in range(10):
            resilience.update(None, {"deadlines": {"external_s": 0.005 + 0.01 * wave}})
            await asyncio.gather(*(_cut_short(api) for _ in range(40)))
        assert sample_value_of(metrics, "brink_deadline_exceeded_total", stage="external") > 100

        resilience.update(None, {"deadlines": {"external_s": 5}})
        quotes = await asyncio.gather(*(api.quote(item, 1) for item in range(1, 9)))
        assert [quote.item_id for quote in quotes] == list(range(1, 9))
    finally:
        await api.aclose()


async def _cut_short(api: ExternalApi) -> None:
    with contextlib.suppress(DeadlineExceeded, ExternalError):
        await api.quote(1, 1)


def sample_value_of(metrics: ServiceMetrics, name: str, **labels: str) -> float:
    return metrics.registry.get_sample_value(name, labels) or 0.0
