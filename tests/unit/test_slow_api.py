"""The slow API in-process, through FastAPI's TestClient, with millisecond latencies."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from typing import Any

import httpx2
import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr

from demo_service.auth import require_bearer
from demo_service.settings import Settings, SlowApiSettings
from demo_service.slow_api import SlowApiState, create_slow_api, price_quote
from tests.support import eventually

TOKEN = "unit-test-token-0123456789abcdef"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
KNOBS: dict[str, Any] = {
    "base_latency_s": 0.001,
    "jitter_sigma": 0.0,
    "capacity": 5,
    "error_rate": 0.0,
    "extra_latency_s": 0.0,
    "outage": "none",
}


def _settings(token: str | None = TOKEN, **knobs: Any) -> Settings:
    slow_api = SlowApiSettings(**{**KNOBS, **knobs, "seed": 1})
    return Settings(slow_api=slow_api, admin_token=None if token is None else SecretStr(token))


@pytest.fixture
def client() -> Iterator[TestClient]:
    with TestClient(create_slow_api(_settings())) as client:
        yield client


def _samples(client: TestClient) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every ``brink_slow_api_*`` sample of ``/metrics``, keyed by name and labels."""
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
        if sample.name.startswith("brink_slow_api_")
    }


def test_quote_shape(client: TestClient) -> None:
    response = client.get("/quote", params={"item_id": 42, "quantity": 3})
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"item_id", "quantity", "carrier", "price_cents"}
    assert body["item_id"] == 42
    assert body["quantity"] == 3
    assert isinstance(body["carrier"], str)
    assert body["carrier"]
    assert body["price_cents"] > 0
    assert body == price_quote(42, 3).model_dump()
    assert client.get("/quote", params={"item_id": 42, "quantity": 3}).json() == body


def test_quote_quantity_defaults_to_one(client: TestClient) -> None:
    body = client.get("/quote", params={"item_id": 2**31 - 1}).json()
    assert body["quantity"] == 1
    assert body["price_cents"] * 5 == price_quote(2**31 - 1, 5).price_cents


@pytest.mark.parametrize(
    "params",
    [
        {},
        {"item_id": 0},
        {"item_id": 2**31},
        {"item_id": "seven"},
        {"item_id": 1, "quantity": 0},
        {"item_id": 1, "quantity": 101},
    ],
)
def test_bad_quote_params_are_422(client: TestClient, params: dict[str, Any]) -> None:
    response = client.get("/quote", params=params)
    assert response.status_code == 422
    assert response.json()["detail"]


def test_injected_errors_are_503() -> None:
    with TestClient(create_slow_api(_settings(error_rate=1.0))) as client:
        response = client.get("/quote", params={"item_id": 1})
        assert response.status_code == 503
        assert response.json() == {"detail": "injected error"}
        assert _samples(client)[("brink_slow_api_requests_total", frozenset({("status", "503")}))]


def test_healthz(client: TestClient) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


@pytest.mark.parametrize(
    ("authorization", "reason"),
    [
        (None, "missing bearer token"),
        ("Bearer wrong-token-0123456789abcdef", "invalid bearer token"),
        (f"Bearer {TOKEN}x", "invalid bearer token"),
        (f"Bearer {TOKEN[:-1]}", "invalid bearer token"),
        ("Bearer t\u00f6ken", "invalid bearer token"),
        (f"Basic {TOKEN}", "missing bearer token"),
        (TOKEN, "missing bearer token"),
    ],
    ids=["missing", "wrong", "longer", "shorter", "non-ascii", "basic", "no-scheme"],
)
@pytest.mark.parametrize(("method", "path"), [("GET", "/control"), ("POST", "/control/reset")])
def test_control_needs_the_token(
    client: TestClient,
    caplog: pytest.LogCaptureFixture,
    authorization: str | None,
    reason: str,
    method: str,
    path: str,
) -> None:
    caplog.set_level("DEBUG")
    headers = {} if authorization is None else {b"Authorization": authorization.encode()}
    response = client.request(method, path, headers=headers)
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert response.json() == {"detail": reason}
    assert TOKEN not in response.text
    assert TOKEN not in caplog.text


def test_put_control_needs_the_token(client: TestClient) -> None:
    response = client.put("/control", json={"error_rate": 1.0})
    assert response.status_code == 401
    # The token is checked before the body: no validation hints for strangers.
    assert client.put("/control", json={"bogus": 1}).status_code == 401
    assert client.get("/control", headers=AUTH).json()["error_rate"] == 0.0


def test_token_stays_secret() -> None:
    app = create_slow_api(_settings())
    assert TOKEN not in repr(require_bearer(SecretStr(TOKEN)))
    assert TOKEN not in repr(app.state.slow_api)
    with TestClient(app) as client:
        client.get("/control", headers={"Authorization": "Bearer nope"})
        assert TOKEN not in json.dumps(client.get("/openapi.json").json())
        assert TOKEN not in client.get("/metrics").text
        assert TOKEN not in client.get("/control", headers=AUTH).text


def test_empty_token_is_refused() -> None:
    with pytest.raises(ValueError, match="empty"):
        require_bearer(SecretStr(""))


def test_get_control_shows_the_start_up_knobs(client: TestClient) -> None:
    response = client.get("/control", headers=AUTH)
    assert response.status_code == 200
    assert response.json() == KNOBS


def test_put_control_changes_a_subset(client: TestClient) -> None:
    response = client.put("/control", headers=AUTH, json={"capacity": 50, "error_rate": 1.0})
    assert response.status_code == 200
    expected = {**KNOBS, "capacity": 50, "error_rate": 1.0}
    assert response.json() == expected
    assert client.get("/control", headers=AUTH).json() == expected
    assert client.get("/quote", params={"item_id": 1}).status_code == 503
    samples = _samples(client)
    assert samples[("brink_slow_api_knob", frozenset({("knob", "capacity")}))] == 50
    assert samples[("brink_slow_api_knob", frozenset({("knob", "error_rate")}))] == 1.0


def test_put_control_with_nothing_changes_nothing(client: TestClient) -> None:
    response = client.put("/control", headers=AUTH, json={})
    assert response.status_code == 200
    assert response.json() == KNOBS


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"capacity": 0}, "capacity"),
        ({"capacity": 100_001}, "capacity"),
        ({"capacity": 2.5}, "capacity"),
        ({"capacity": None}, "capacity"),
        ({"error_rate": 1.5}, "error_rate"),
        ({"jitter_sigma": -0.1}, "jitter_sigma"),
        ({"jitter_sigma": 3.5}, "jitter_sigma"),
        ({"base_latency_s": 61}, "base_latency_s"),
        ({"base_latency_s": "slow"}, "base_latency_s"),
        ({"seed": 3}, "seed"),
        ({"capacity": 10, "bogus": 1}, "bogus"),
    ],
)
def test_put_control_validates(client: TestClient, body: dict[str, Any], field: str) -> None:
    response = client.put("/control", headers=AUTH, json=body)
    assert response.status_code == 422
    (error,) = response.json()["detail"]
    assert error["loc"][-1] == field
    assert error["msg"]
    assert client.get("/control", headers=AUTH).json() == KNOBS


def test_control_bounds_match_the_settings(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    update = spec["components"]["schemas"]["KnobsUpdate"]["properties"]
    settings = SlowApiSettings.model_json_schema()["properties"]
    for knob, schema in update.items():
        if knob == "outage":
            assert set(schema["enum"]) == set(settings[knob]["enum"])
            continue
        assert (schema["type"], schema["minimum"], schema["maximum"]) == (
            settings[knob]["type"],
            settings[knob]["minimum"],
            settings[knob]["maximum"],
        )


def test_reset_restores_the_start_up_knobs(client: TestClient) -> None:
    client.put("/control", headers=AUTH, json={"base_latency_s": 2.0, "capacity": 1})
    response = client.post("/control/reset", headers=AUTH)
    assert response.status_code == 200
    assert response.json() == KNOBS
    assert _samples(client)[("brink_slow_api_knob", frozenset({("knob", "capacity")}))] == 5


def test_control_absent_without_a_token() -> None:
    with TestClient(create_slow_api(_settings(token=None))) as client:
        assert client.get("/control").status_code == 404
        assert client.put("/control", json={"capacity": 3}).status_code == 404
        assert client.post("/control/reset").status_code == 404
        assert not any(
            path.startswith("/control") for path in client.get("/openapi.json").json()["paths"]
        )


def test_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BRINK_SLOW_API__CAPACITY", "7")
    monkeypatch.delenv("BRINK_ADMIN_TOKEN", raising=False)
    with TestClient(create_slow_api()) as client:
        assert client.get("/control").status_code == 404
        assert _samples(client)[("brink_slow_api_knob", frozenset({("knob", "capacity")}))] == 7


def test_openapi_declares_the_error_answers(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    assert {"200", "422", "503"} <= set(paths["/quote"]["get"]["responses"])
    assert {"200", "401", "422"} <= set(paths["/control"]["put"]["responses"])
    assert {"200", "401"} <= set(paths["/control"]["get"]["responses"])
    assert {"200", "401"} <= set(paths["/control/reset"]["post"]["responses"])


def test_metrics_carry_every_slow_api_metric(client: TestClient) -> None:
    assert client.get("/quote", params={"item_id": 1}).status_code == 200
    samples = _samples(client)
    assert samples[("brink_slow_api_requests_total", frozenset({("status", "200")}))] == 1
    assert samples[("brink_slow_api_request_duration_seconds_count", frozenset())] == 1
    assert samples[("brink_slow_api_requests_in_flight", frozenset())] == 0
    for knob, value in KNOBS.items():
        exported = 0 if knob == "outage" else value  # the outage as its index: none, hang, error
        assert samples[("brink_slow_api_knob", frozenset({("knob", knob)}))] == exported


def test_each_app_has_its_own_registry() -> None:
    for _ in range(2):
        with TestClient(create_slow_api(_settings())) as client:
            client.get("/quote", params={"item_id": 1})
            key = ("brink_slow_api_requests_total", frozenset({("status", "200")}))
            assert _samples(client)[key] == 1


def test_an_error_outage_answers_503_at_once(client: TestClient) -> None:
    client.put("/control", headers=AUTH, json={"outage": "error", "extra_latency_s": 5.0})
    response = client.get("/quote", params={"item_id": 1})
    assert response.status_code == 503
    assert client.post("/control/reset", headers=AUTH).json() == KNOBS
    assert client.get("/quote", params={"item_id": 1}).status_code == 200


async def test_a_hang_outage_holds_calls_until_it_ends() -> None:
    app = create_slow_api(_settings())
    transport = httpx2.ASGITransport(app=app)
    async with httpx2.AsyncClient(transport=transport, base_url="http://slow-api") as client:
        await client.put("/control", headers=AUTH, json={"outage": "hang"})
        held = asyncio.ensure_future(client.get("/quote", params={"item_id": 2}))
        state: SlowApiState = app.state.slow_api

        async def hanging() -> bool:
            return state.in_flight == 1

        await eventually(hanging, timeout_s=5, what="the call held by the outage")
        assert not held.done()
        await client.put("/control", headers=AUTH, json={"outage": "none"})
        response = await asyncio.wait_for(held, timeout=5)
    assert response.status_code == 200


def test_extra_latency_adds_to_every_call() -> None:
    with TestClient(create_slow_api(_settings(extra_latency_s=0.05))) as client:
        started = time.perf_counter()
        assert client.get("/quote", params={"item_id": 3}).status_code == 200
        assert time.perf_counter() - started >= 0.05
