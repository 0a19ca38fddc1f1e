"""The external API client's outcomes and answers, and its live resize, with httpx2.MockTransport
(no network)."""

from __future__ import annotations

import asyncio

import httpx2
import pytest
from prometheus_client import CollectorRegistry

from demo_service.external import ExternalApi, ExternalError, pool_limits
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


class _ClosingTransport(httpx2.MockTransport):
    """A mock every client shares; counts the clients closed (each closes its transport)."""

    closed = 0

    async def aclose(self) -> None:
        self.closed += 1


async def _closed(transport: _ClosingTransport) -> int:
    """The clients closed once the event loop has run every task that can run."""
    for _ in range(20):
        await asyncio.sleep(0)
    return transport.closed


def _gauge(metrics: ServiceMetrics) -> float | None:
    return metrics.registry.get_sample_value("brink_external_connections_max")


def test_the_pool_keeps_no_more_idle_connections_than_it_may_hold() -> None:
    assert pool_limits(5, 10) == httpx2.Limits(max_connections=5, max_keepalive_connections=5)
    assert pool_limits(10, 3) == httpx2.Limits(max_connections=10, max_keepalive_connections=3)
    assert pool_limits(4, 0).max_keepalive_connections == 0


async def test_a_resize_swaps_the_limits_and_the_gauge_follows() -> None:
    api, metrics = _client(httpx2.MockTransport(lambda _: httpx2.Response(200, json=QUOTE)))
    assert api.limits == pool_limits(10, 10)
    assert _gauge(metrics) == 10
    api.resize(5, 5)
    assert api.limits == pool_limits(5, 5)
    assert _gauge(metrics) == 5
    assert (await api.quote(1, 2)).price_cents == 300
    await api.aclose()


async def test_a_resize_to_the_limits_in_use_builds_no_client() -> None:
    transport = _ClosingTransport(lambda _: httpx2.Response(200, json=QUOTE))
    api, _ = _client(transport)
    api.resize(5, 8)
    api.resize(5, 5)  # the same limits: keep-alive is at most the connections
    api.resize(5, 9)
    assert await _closed(transport) == 1  # only the start-up client was retired
    await api.aclose()
    assert transport.closed == 2


async def test_a_call_under_way_finishes_on_the_old_client_which_then_closes() -> None:
    started, release = asyncio.Event(), asyncio.Event()

    async def handler(request: httpx2.Request) -> httpx2.Response:
        if request.url.params["item_id"] == "1":
            started.set()
            await release.wait()
        return httpx2.Response(200, json=QUOTE)

    transport = _ClosingTransport(handler)
    api, metrics = _client(transport)
    slow = asyncio.create_task(api.quote(1, 2))
    await started.wait()
    api.resize(2, 2)
    assert (await api.quote(2, 2)).price_cents == 300  # on the new client, at once
    assert await _closed(transport) == 0  # the old client still has a call under way
    release.set()
    assert (await slow).price_cents == 300
    assert await _closed(transport) == 1
    assert _outcomes(metrics, "ok") == 2
    await api.aclose()
    assert transport.closed == 2
