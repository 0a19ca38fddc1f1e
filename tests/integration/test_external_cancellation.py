"""The external client survives cancellation under pool contention (encode/httpcore#1093).

With httpx/httpcore 1.0.9, cancelling requests that wait for a pool connection leaked the
slots until every call failed with PoolTimeout. brink uses httpx2, whose pool reclaims them;
this test keeps it honest against the real slow API.
"""

from __future__ import annotations

import asyncio
import contextlib

import pytest
from prometheus_client import CollectorRegistry

from demo_service.external import ExternalApi, ExternalError
from demo_service.metrics import ServiceMetrics
from demo_service.settings import ExternalSettings
from tests.support import Spawn

pytestmark = pytest.mark.integration


async def _cancelled_soon(api: ExternalApi, deadline_s: float) -> None:
    with contextlib.suppress(TimeoutError, ExternalError):
        await asyncio.wait_for(api.quote(1, 1), deadline_s)


async def test_cancelled_calls_do_not_leak_pool_slots(spawn_slow_api: Spawn) -> None:
    slow_api = spawn_slow_api(
        {"BRINK_SLOW_API__BASE_LATENCY_S": "0.05", "BRINK_SLOW_API__JITTER_SIGMA": "1.0"}
    )
    settings = ExternalSettings(
        url=slow_api.base_url, max_connections=4, max_keepalive=4, pool_timeout_s=2.0
    )
    api = ExternalApi.from_settings(settings, ServiceMetrics(CollectorRegistry()))
    try:
        # Ten waves of 40 calls on 4 connections, cancelled at random points: while waiting
        # for a connection, while connecting, while reading.
        for wave in range(10):
            deadline_s = 0.005 + 0.01 * wave
            await asyncio.gather(*(_cancelled_soon(api, deadline_s) for _ in range(40)))

        # Afterwards the pool must still have all 4 slots: 8 calls in 2 rounds all succeed
        # well within the pool timeout.
        quotes = await asyncio.wait_for(
            asyncio.gather(*(api.quote(item, 1) for item in range(1, 9))), timeout=10
        )
        assert [quote.item_id for quote in quotes] == list(range(1, 9))
    finally:
        await api.aclose()
