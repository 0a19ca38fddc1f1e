"""The external API client's outcomes and answers, with httpx2.MockTransport (no network)."""

from __future__ import annotations

import httpx2
import pytest
from prometheus_client import CollectorRegistry

from demo_service.external import ExternalApi, ExternalError
from demo_service.metrics import ServiceMetrics
from demo_service.settings import ExternalSettings

QUOTE = {"item_id": 1, "quantity": 2, "carrier": "swiftship", "price_cents": 300}


def _client(handler: httpx2.MockTransport) -> tuple[ExternalApi, ServiceMetrics]:
    metrics = ServiceMetrics(CollectorRegistry())
    return ExternalApi.from_settings(ExternalSettings(), metrics, transport=handler), metrics


def _outcomes(metrics: ServiceMetrics, outcome: str) -> float | None:
    return metrics.registry.get_sample_value("brink_external_requests_total", {"outcome": outcome})


async def test_a_good_quote() -> None:
    def handler(request: httpx2.Request) -> httpx2.Response:
        assert request.url.params["item_id"] == "1"
        return httpx2.Response(200, json=QUOTE)

    api, metrics = _client(httpx2.MockTransport(handler))
    quote = await api.quote(1, 2)
    assert quote.price_cents == 300
    assert _outcomes(metrics, "ok") == 1
    assert metrics.registry.get_sample_value("brink_external_requests_in_flight") == 0


@pytest.mark.parametrize(
    ("response_or_error", "status", "outcome"),
    [
        (httpx2.Response(503, json={"detail": "injected error"}), 502, "http_error"),
        (httpx2.Response(200, json={"unexpected": True}), 502, "invalid_body"),
        (httpx2.ReadTimeout("slow"), 504, "timeout"),
        (httpx2.ConnectTimeout("slow"), 504, "timeout"),
        (httpx2.PoolTimeout("full"), 503, "pool_timeout"),
        (httpx2.ConnectError("refused"), 502, "transport_error"),
    ],
)
async def test_failures_become_clear_answers(
    response_or_error: httpx2.Response | Exception, status: int, outcome: str
) -> None:
    def handler(request: httpx2.Request) -> httpx2.Response:
        if isinstance(response_or_error, Exception):
            raise response_or_error
        return response_or_error

    api, metrics = _client(httpx2.MockTransport(handler))
    with pytest.raises(ExternalError) as caught:
        await api.quote(1, 1)
    assert caught.value.status_code == status
    assert caught.value.outcome == outcome
    assert _outcomes(metrics, outcome) == 1
