"""The one shared client of the slow external API, with configured limits and timeouts.

Every attempt is measured: in-flight (waiting for a pool connection included), duration and
outcome. Failures become :class:`ExternalError` with the status the route should answer.
A :class:`Guard` wraps each call (the service passes its live resilience mechanisms: bulkhead,
breaker, retries) and gives each attempt its deadline; an attempt cut by the deadline counts as
outcome ``timeout`` and raises :class:`DeadlineExceeded`. Without a guard: one plain attempt.

The client's connection pool can be resized live (:meth:`ExternalApi.resize`, the fault knobs
``external_pool_size`` and ``external_keepalive``): httpx cannot change a client's limits, so a
new client is built and swapped in (:class:`~demo_service.generations.Generations`). Each
attempt runs to its end on the client it started with, waiting for one of its connections
included; a retry takes the current one. The old client is closed, its connections with it,
once its last attempt is done. ``brink_external_connections_max`` is the limit of the client in
use now; while an old client works off its attempts, the two together hold more connections
than that (after a shrink from 10 to 2, up to 12 for as long as the old queue lasts).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Protocol, TypeVar

import httpx2
from pydantic import BaseModel, ValidationError

from demo_service.generations import Generations
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


def pool_limits(max_connections: int, max_keepalive: int) -> httpx2.Limits:
    """The client's pool: ``max_connections`` at most, of which ``max_keepalive`` (never more
    than ``max_connections``) stay open while idle."""
    return httpx2.Limits(
        max_connections=max_connections,
        max_keepalive_connections=min(max_keepalive, max_connections),
    )


async def _close(client: httpx2.AsyncClient) -> None:
    await client.aclose()


class ExternalApi:
    """Client of the slow API: one ``httpx2.AsyncClient`` in use at a time, swapped when resized."""

    def __init__(
        self,
        settings: ExternalSettings,
        metrics: ServiceMetrics,
        transport: httpx2.AsyncBaseTransport | None = None,
        guard: Guard | None = None,
    ) -> None:
        self._url = str(settings.url)
        self._timeout = httpx2.Timeout(
            connect=settings.connect_timeout_s,
            read=settings.read_timeout_s,
            write=settings.read_timeout_s,
            pool=settings.pool_timeout_s,
        )
        # Loading the CA bundle takes ~20 ms of the event loop: once, not on every swap.
        self._tls = httpx2.create_ssl_context()
        self._transport = transport
        self._metrics = metrics
        self._guard = guard or Unguarded(metrics.resilience)
        self._limits = pool_limits(settings.max_connections, settings.max_keepalive)
        self._clients = Generations(self._client(self._limits), _close)
        metrics.external_connections_max.set(settings.max_connections)

    @classmethod
    def from_settings(
        cls,
        settings: ExternalSettings,
        metrics: ServiceMetrics,
        transport: httpx2.AsyncBaseTransport | None = None,
        guard: Guard | None = None,
    ) -> ExternalApi:
        for outcome in OUTCOMES:  # from 0, so rate() sees the very first failure of each kind
            metrics.external_requests.labels(outcome)
        return cls(settings, metrics, transport, guard)

    def _client(self, limits: httpx2.Limits) -> httpx2.AsyncClient:
        return httpx2.AsyncClient(
            base_url=self._url,
            limits=limits,
            timeout=self._timeout,
            verify=self._tls,
            transport=self._transport,
        )

    @property
    def limits(self) -> httpx2.Limits:
        """The pool limits of the client in use now."""
        return self._limits

    def resize(self, max_connections: int, max_keepalive: int) -> None:
        """Swap in a client of ``max_connections`` (``max_keepalive`` of them kept open while
        idle); the old one closes once its attempts are done. Nothing to do when the client in
        use has those limits already."""
        limits = pool_limits(max_connections, max_keepalive)
        if limits == self._limits:
            return
        self._clients.swap(self._client(limits))
        self._limits = limits
        self._metrics.external_connections_max.set(max_connections)

    async def aclose(self) -> None:
        await self._clients.aclose()

    async def quote(self, item_id: int, quantity: int) -> Quote:
        """A quote, through the guard; raises :class:`ExternalError`, or what the guard raises."""
        return await self._guard.call_external(lambda: self._attempt(item_id, quantity))

    async def _attempt(self, item_id: int, quantity: int) -> Quote:
        metrics = self._metrics
        outcome = "ok"
        metrics.external_in_flight.inc()
        started = time.perf_counter()
        try:
            with self._clients.using() as client:
                async with self._guard.external_deadline():
                    response = await client.get(
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
