"""Route templates and the pure-ASGI metrics middleware, on a tiny in-process app."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry

from demo_service.http_metrics import UNMATCHED, HttpMetricsMiddleware, RouteTemplates
from demo_service.metrics import ServiceMetrics


def test_raw_paths_map_to_their_templates() -> None:
    routes = RouteTemplates(["/items/{item_id}", "/items/{item_id}/shipping-quote", "/cpu"])
    assert routes.match("/items/42") == "/items/{item_id}"
    assert routes.match("/items/abc") == "/items/{item_id}"
    assert routes.match("/items/42/shipping-quote") == "/items/{item_id}/shipping-quote"
    assert routes.match("/cpu") == "/cpu"
    assert routes.match("/cpu/extra") == UNMATCHED
    assert routes.match("/../../etc/passwd") == UNMATCHED


def test_middleware_counts_by_template_status_and_method() -> None:
    metrics = ServiceMetrics(CollectorRegistry())
    app = FastAPI()

    @app.get("/things/{thing_id}")
    async def thing(thing_id: int) -> dict[str, int]:
        return {"id": thing_id}

    app.add_middleware(
        HttpMetricsMiddleware, metrics=metrics, routes=RouteTemplates(["/things/{thing_id}"])
    )
    with TestClient(app) as client:
        client.get("/things/1")
        client.get("/things/2")
        client.get("/things/x")
        client.request("BREW", "/things/1")
        client.get("/elsewhere")

    registry = metrics.registry

    def count(route: str, method: str, status: str) -> float | None:
        labels = {"route": route, "method": method, "status": status}
        return registry.get_sample_value("brink_http_requests_total", labels)

    assert count("/things/{thing_id}", "GET", "200") == 2
    assert count("/things/{thing_id}", "GET", "422") == 1
    assert count("/things/{thing_id}", "other", "405") == 1
    assert count(UNMATCHED, "GET", "404") == 1
    in_flight = registry.get_sample_value(
        "brink_http_requests_in_flight", {"route": "/things/{thing_id}"}
    )
    assert in_flight == 0
    duration_count = registry.get_sample_value(
        "brink_http_request_duration_seconds_count",
        {"route": "/things/{thing_id}", "method": "GET"},
    )
    assert duration_count == 3
