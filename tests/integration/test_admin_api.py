"""The admin API on a real service: token, validation, live preset switches, reset."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx2
import pytest

from demo_service.resilience.presets import FRAGILE, RESILIENT
from tests.conftest import ADMIN_TOKEN
from tests.support import Served, sample_value

pytestmark = pytest.mark.integration

AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


@pytest.fixture
async def client(service: Served) -> AsyncIterator[httpx2.AsyncClient]:
    async with httpx2.AsyncClient(base_url=service.base_url, timeout=30) as client:
        yield client
        # Leave the module's service as it started, whatever the test did.
        assert (await client.post("/admin/resilience/reset", headers=AUTH)).status_code == 200
        assert (await client.post("/admin/faults/reset", headers=AUTH)).status_code == 200


async def _gauge(client: httpx2.AsyncClient, name: str, labels: dict[str, str] | None) -> float:
    return sample_value((await client.get("/metrics")).text, name, labels)


def _order(client: httpx2.AsyncClient, item_id: int) -> Any:
    return client.post(
        "/orders", json={"item_id": item_id}, headers={"Idempotency-Key": str(uuid.uuid4())}
    )


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/admin/resilience"),
        ("PUT", "/admin/resilience"),
        ("POST", "/admin/resilience/reset"),
        ("GET", "/admin/faults"),
        ("PUT", "/admin/faults"),
        ("POST", "/admin/faults/reset"),
    ],
)
async def test_every_admin_route_refuses_without_the_token(
    client: httpx2.AsyncClient, method: str, path: str
) -> None:
    body = {"preset": "resilient"} if path == "/admin/resilience" else {"pool_size": 1}
    for headers in ({}, {"Authorization": "Bearer wrong-token-wrong-token"}):
        response = await client.request(method, path, json=body, headers=headers)
        assert response.status_code == 401, response.text
        assert response.json()["detail"]
    state = (await client.get("/admin/resilience", headers=AUTH)).json()
    assert state["preset"] == "fragile"  # nothing changed
    assert (await client.get("/admin/faults", headers=AUTH)).json()["pool_size"] == 5


async def test_the_start_up_state(client: httpx2.AsyncClient) -> None:
    state = (await client.get("/admin/resilience", headers=AUTH)).json()
    assert state == {"preset": "fragile", "overrides": {}, "effective": FRAGILE.model_dump()}
    faults = (await client.get("/admin/faults", headers=AUTH)).json()
    assert faults == {
        "db_latency_s": 0.0,
        "hot_row_lock_s": 0.0,
        "hot_items": 10,
        "cpu_burn_iterations": 0,
        "pool_size": 5,
        "pool_min": 1,
        "external_pool_size": 10,
        "external_keepalive": 10,
    }


@pytest.mark.parametrize(
    ("path", "body", "reason"),
    [
        ("/admin/resilience", {"preset": "sturdy"}, "'fragile', 'resilient' or 'adaptive'"),
        ("/admin/resilience", {"shedding": {"limit": 0}}, "greater than or equal to 1"),
        ("/admin/resilience", {"retry": {"policy": "always"}}, "'none', 'naive' or 'budgeted'"),
        ("/admin/resilience", {"breaker": {"min_calls": 50}}, "breaker.min_calls (50) exceeds"),
        ("/admin/resilience", {"bulkhead": {"size": 3}}, "Extra inputs are not permitted"),
        ("/admin/resilience", {"deadlines": {"external_s": None}}, "valid number"),
        ("/admin/faults", {"db_latency_s": -1}, "greater than or equal to 0"),
        ("/admin/faults", {"pool_size": 501}, "less than or equal to 500"),
        ("/admin/faults", {"pool_size": None}, "valid integer"),
        ("/admin/faults", {"external_pool_size": 0}, "greater than or equal to 1"),
        ("/admin/faults", {"pool_min": 501}, "less than or equal to 500"),
        ("/admin/faults", {"outage": "hang"}, "Extra inputs are not permitted"),
    ],
)
async def test_a_bad_value_is_422_with_the_reason_and_changes_nothing(
    client: httpx2.AsyncClient, path: str, body: dict[str, Any], reason: str
) -> None:
    before = (await client.get(path, headers=AUTH)).json()
    response = await client.put(path, json=body, headers=AUTH)
    assert response.status_code == 422
    assert reason in str(response.json()["detail"])
    assert (await client.get(path, headers=AUTH)).json() == before


async def test_a_preset_switch_takes_effect_live(client: httpx2.AsyncClient) -> None:
    assert await _gauge(client, "brink_admission_limit", None) == 0
    state = await client.put("/admin/resilience", json={"preset": "resilient"}, headers=AUTH)
    assert state.json()["effective"] == RESILIENT.model_dump()
    assert await _gauge(client, "brink_admission_limit", None) == 25
    assert await _gauge(client, "brink_bulkhead_limit", {"name": "external"}) == 10

    # A knob on its own, on top of the preset: a DB statement deadline shorter than the hold.
    await client.put("/admin/faults", json={"db_latency_s": 0.3}, headers=AUTH)
    body = {"deadlines": {"db_statement_s": 0.05}}
    state = await client.put("/admin/resilience", json=body, headers=AUTH)
    assert state.json()["overrides"] == body
    cut = await _order(client, 21)
    assert cut.status_code == 503
    assert cut.headers["Retry-After"] == "1"
    assert "db_statement deadline" in cut.json()["detail"]

    # Back to fragile: no deadline, the order waits out the hold and succeeds.
    state = await client.put("/admin/resilience", json={"preset": "fragile"}, headers=AUTH)
    assert state.json()["overrides"] == {}
    assert (await _order(client, 21)).status_code == 201
    assert await _gauge(client, "brink_admission_limit", None) == 0


async def test_fault_knobs_set_and_reset_cleanly(client: httpx2.AsyncClient) -> None:
    changes = {"hot_row_lock_s": 0.1, "hot_items": 3, "cpu_burn_iterations": 1000}
    response = await client.put("/admin/faults", json=changes, headers=AUTH)
    assert response.status_code == 200
    assert {name: response.json()[name] for name in changes} == changes
    assert await _gauge(client, "brink_fault_active", {"fault": "hot_row_lock_s"}) == 1
    assert await _gauge(client, "brink_fault_active", {"fault": "pool_size"}) == 0

    reset = await client.post("/admin/faults/reset", headers=AUTH)
    assert reset.json()["hot_row_lock_s"] == 0
    assert reset.json()["cpu_burn_iterations"] == 0
    for fault in changes:
        assert await _gauge(client, "brink_fault_active", {"fault": fault}) == 0
