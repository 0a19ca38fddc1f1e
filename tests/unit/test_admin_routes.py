"""The admin API exists only with a token, and the routes declare their overload answers."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from demo_service.app import create_app
from demo_service.settings import load_settings

TOKEN = "unit-test-admin-token-0123456789"
ADMIN_PATHS = {
    "/admin/resilience",
    "/admin/resilience/reset",
    "/admin/faults",
    "/admin/faults/reset",
}


def _openapi(**settings: object) -> dict[str, Any]:
    spec: dict[str, Any] = create_app(load_settings(**settings)).openapi()
    return spec


def test_no_token_no_admin_routes() -> None:
    assert not ADMIN_PATHS & set(_openapi()["paths"])


def test_with_a_token_the_admin_routes_are_protected() -> None:
    spec = _openapi(admin_token=TOKEN)
    assert set(spec["paths"]) >= ADMIN_PATHS
    put = spec["paths"]["/admin/resilience"]["put"]
    assert put["security"] == [{"BearerToken": []}]
    assert {"401", "422"} <= set(put["responses"])


def test_a_request_without_the_token_is_401_before_anything_runs() -> None:
    app = create_app(load_settings(admin_token=TOKEN))
    client = TestClient(app)  # no lifespan: nothing behind the check exists
    for method, path in (("GET", "/admin/resilience"), ("POST", "/admin/faults/reset")):
        response = client.request(method, path)
        assert response.status_code == 401
        assert response.headers["WWW-Authenticate"] == "Bearer"
    wrong = client.get("/admin/faults", headers={"Authorization": "Bearer not-the-token"})
    assert wrong.status_code == 401


def test_overload_answers_are_declared() -> None:
    paths = _openapi()["paths"]
    quote = paths["/items/{item_id}/shipping-quote"]["get"]["responses"]
    assert {"503", "504"} <= set(quote)
    assert "Retry-After" in quote["503"]["headers"]
    assert "breaker" in quote["503"]["description"]
    for path, method in (("/items/{item_id}", "get"), ("/orders", "post"), ("/cpu", "get")):
        assert "Retry-After" in paths[path][method]["responses"]["503"]["headers"], path
