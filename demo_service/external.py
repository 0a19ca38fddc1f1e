"""The one shared client of the slow external API, with configured limits and timeouts.

Every attempt is measured: in-flight (waiting for a pool connection included), duration and
outcome. Failures become :class:`ExternalError` with the status the route should answer.
A :class:`Guard` wraps each call (the service passes its live resilience mechanisms: bulkhead,
breaker, retries) and gives each attempt its deadline; an attempt cut by the deadline counts as
outcome ``timeout`` and raises :class:`DeadlineExceeded`. Without a guard: one plain attempt.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Protocol, TypeVar

import httpx2
from pydantic import BaseModel, ValidationError

from demo_service.metrics import ResilienceMetrics, ServiceMetrics
from demo_service.resilience.deadlines import Deadline, DeadlineExceeded
from demo_service.settings import ExternalSettings

T = TypeVar("T")


OUTCOMES = (
    "ok",
    "http_error",
    "timeout",
    "pool_timeout",
    "transport_error",
    "invalid_body",
    "cancelled",
)
"""Every outcome label of ``brink_external_requests_total`` (bounded)."""


class Quote(BaseModel):
    item_id: int
    quantity: int
    carrier: str
    price_cents: int


class ExternalError(Exception):
    """The external call failed; ``status_code`` is what our client should see."""

    def __init__(self, status_code: int, outcome: str, detail: str) -> None:
        super().__init__(detail)
        self.status_code = status_code
        self.outcome = outcome
        self.detail = detail


def _classify(exc: httpx2.HTTPError) -> ExternalError:
    if isinstance(exc, httpx2.PoolTimeout):
        return ExternalError(503, "pool_timeout", "external API client pool exhausted")
    if isinstance(exc, httpx2.TimeoutException):
        return ExternalError(504, "timeout", f"external API timed out ({type(exc).__name__})")
    if isinstance(exc, httpx2.HTTPStatusError):
        status = exc.response.status_code
        return ExternalError(502, "http_error", f"external API answered {status}")
    return ExternalError(502, "transport_error", f"external API unreachable ({type(exc).__name__})")


class Guard(Protocol):
    """What wraps every call: ``call_external`` runs the attempts, each under the deadline."""

    @property
    def external_deadline(self) -> Deadline: ...

    async def call_external(self, attempt: Callable[[], Awaitable[T]]) -> T: ...


class Unguarded:
    """One attempt per call, no deadline of our own (the client's timeouts still apply)."""

    def __init__(self, metrics: ResilienceMetrics) -> None:
        self.external_deadline = Deadline("external", None, metrics)

    async def call_external(self, attempt: Callable[[], Awaitable[T]]) -> T:
        return await attempt()


class ExternalApi:
    """Client of the slow API: one ``httpx2.AsyncClient`` for the whole process."""

    def __init__(
        self, client: httpx2.AsyncClient, metrics: ServiceMetrics, guard: Guard | None = None
    ) -> None:
        self._client = client
        self._metrics = metrics
        self._guard = guard or Unguarded(metrics.resilience)

    @classmethod
    def from_settings(
        cls,
        settings: ExternalSettings,
        metrics: ServiceMetrics,
        transport: httpx2.AsyncBaseTransport | None = None,
        guard: Guard | None = None,
    ) -> ExternalApi:
        limits = httpx2.Limits(
            max_connections=settings.max_connections,
            max_keepalive_connections=settings.max_keepalive,
        )
        timeout = httpx2.Timeout(
            connect=settings.connect_timeout_s,
            read=settings.read_timeout_s,
            write=settings.read_timeout_s,
            pool=settings.pool_timeout_s,
        )
        client = httpx2.AsyncClient(
            base_url=str(settings.url), limits=limits, timeout=timeout, transport=transport
        )
        metrics.external_connections_max.set(settings.max_connections)
        for outcome in OUTCOMES:  # from 0, so rate() sees the very first failure of each kind
            metrics.external_requests.labels(outcome)
        return cls(client, metrics, guard)

    async def aclose(self) -> None:
        await self._client.aclose()

    async def quote(self, item_id: int, quantity: int) -> Quote:
        """A quote, through the guard; raises :class:`ExternalError`, or what the guard raises."""
        return await self._guard.call_external(lambda: self._attempt(item_id, quantity))

    async def _attempt(self, item_id: int, quantity: int) -> Quote:
        metrics = self._metrics
        outcome = "ok"
        metrics.external_in_flight.inc()
        started = time.perf_counter()
        try:
            async with self._guard.external_deadline():
                response = await self._client.get(
                    "/quote", params={"item_id": item_id, "quantity": quantity}
                )
            response.raise_for_status()
            return Quote.model_validate_json(response.content)
        except DeadlineExceeded:
            outcome = "timeout"
            raise
        except httpx2.HTTPError as exc:
            error = _classify(exc)
            outcome = error.outcome
            raise error from exc
        except asyncio.CancelledError:
            outcome = "cancelled"
            raise
        except ValidationError as exc:
            outcome = "invalid_body"
            raise ExternalError(502, outcome, "external API sent an invalid quote") from exc
        finally:
            metrics.external_in_flight.dec()
            metrics.external_duration.labels(outcome).observe(time.perf_counter() - started)
            metrics.external_requests.labels(outcome).inc()
