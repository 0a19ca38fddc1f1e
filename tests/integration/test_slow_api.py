"""The slow API as a real uvicorn process on loopback."""

from __future__ import annotations

import asyncio
import os
import statistics
import subprocess
import sys
import time

import httpx2
import pytest

from loadtests.native.process import free_port
from tests.support import Spawn

pytestmark = pytest.mark.integration
FAST = {"BRINK_SLOW_API__BASE_LATENCY_S": "0.001", "BRINK_SLOW_API__JITTER_SIGMA": "0"}


def test_quote_over_http(spawn_slow_api: Spawn) -> None:
    served = spawn_slow_api(FAST)
    with httpx2.Client(base_url=served.base_url, timeout=5.0) as client:
        response = client.get("/quote", params={"item_id": 7, "quantity": 2})
        assert response.status_code == 200
        assert set(response.json()) == {"item_id", "quantity", "carrier", "price_cents"}
        assert client.get("/quote", params={"item_id": 0}).status_code == 422
        assert "brink_slow_api_requests_total" in client.get("/metrics").text


def test_control_over_http(spawn_slow_api: Spawn) -> None:
    served = spawn_slow_api(FAST)
    token = served.process.env["BRINK_ADMIN_TOKEN"]
    auth = {"Authorization": f"Bearer {token}"}
    with httpx2.Client(base_url=served.base_url, timeout=5.0) as client:
        assert client.put("/control", json={"error_rate": 1.0}).status_code == 401
        changed = client.put("/control", headers=auth, json={"error_rate": 1.0})
        assert changed.status_code == 200
        assert client.get("/quote", params={"item_id": 1}).status_code == 503
        assert client.post("/control/reset", headers=auth).json()["error_rate"] == 0.0
        assert client.get("/quote", params={"item_id": 1}).status_code == 200
    assert token not in served.process.log_tail(1_000)


def test_bad_setting_exits_2_naming_it() -> None:
    env = {name: value for name, value in os.environ.items() if not name.startswith("BRINK_")}
    env |= {"BRINK_SLOW_API__CAPACITY": "0", "BRINK_SLOW_API__PORT": str(free_port())}
    result = subprocess.run(
        [sys.executable, "-m", "demo_service.slow_api"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2, result.stderr
    assert "BRINK_SLOW_API__CAPACITY" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


async def _timed_quote(client: httpx2.AsyncClient) -> float:
    started = time.perf_counter()
    response = await client.get("/quote", params={"item_id": 1})
    assert response.status_code == 200
    return time.perf_counter() - started


async def test_latency_rises_past_capacity(spawn_slow_api: Spawn) -> None:
    base, capacity, burst = 0.05, 4, 16
    served = spawn_slow_api(
        {
            "BRINK_SLOW_API__BASE_LATENCY_S": str(base),
            "BRINK_SLOW_API__JITTER_SIGMA": "0",
            "BRINK_SLOW_API__CAPACITY": str(capacity),
        }
    )
    limits = httpx2.Limits(max_connections=burst, max_keepalive_connections=burst)
    async with httpx2.AsyncClient(base_url=served.base_url, timeout=10.0, limits=limits) as client:
        # Open the connections first, so the burst measures the server rather than TCP set-up.
        await asyncio.gather(*(client.get("/healthz") for _ in range(burst)))
        serial = [await _timed_quote(client) for _ in range(capacity)]
        concurrent = await asyncio.gather(*(_timed_quote(client) for _ in range(burst)))
    # Alone, a call takes the base; with 4x capacity in flight the later arrivals take up to 4x.
    assert statistics.median(serial) < 2 * base
    assert statistics.fmean(concurrent) > 1.5 * statistics.fmean(serial)
    assert max(concurrent) > 2.5 * base
