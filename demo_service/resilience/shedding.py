"""Load shedding at admission: pure ASGI middleware that answers 503 before any pool is touched.

A request is admitted while in-flight is below the :class:`Limiter`'s limit. Past it, it is shed
at once (``in_flight_limit``) or, when ``max_queue_s`` > 0, waits in a FIFO queue of our own for
a slot and is shed when its wait reaches ``max_queue_s`` (``queue_time_limit``). That wait is the
queue time we measure, exactly: time spent before the app gets the request. Waiting done before
this middleware is called (the socket backlog, the event loop's ready queue) is invisible per
request; it shows as event-loop lag. Keep ``max_queue_s`` short (tens of ms): a long FIFO queue
is what made the metastable failure stick, every request reaching the pool already stale.

Shed answers are 503 with ``Retry-After`` and ``{"detail": reason}``. Exempt paths (health,
metrics, admin) pass uncounted, so observability survives overload. Each admitted request feeds
the limiter a sample when it ends: its latency, whether it was ok (no exception and not a status
in ``error_statuses``; 503 is left out by default because fast refusals such as an open breaker
answer it, and slow ones show in the latency), and the in-flight count it ran alongside.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Callable, Collection, Iterable
from typing import Protocol

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from demo_service.metrics import ResilienceMetrics

DEFAULT_EXEMPT = ("/healthz", "/readyz", "/metrics", "/admin", "/control")
ERROR_STATUSES = frozenset({500, 502, 504})


IN_FLIGHT_LIMIT = "in_flight_limit"
QUEUE_TIME_LIMIT = "queue_time_limit"
SHED_REASONS = (IN_FLIGHT_LIMIT, QUEUE_TIME_LIMIT)
"""Why a request was shed: the ``reason`` label of ``brink_shed_total``."""


class Limiter(Protocol):
    """Where the admission limit comes from: :class:`StaticLimiter` or an adaptive limiter."""

    @property
    def limit(self) -> int: ...

    def on_sample(self, latency_s: float, ok: bool, in_flight: int) -> int:
        """Learn from one finished request; return the new limit."""
        ...


class StaticLimiter:
    """A fixed limit, changeable live through :attr:`limit`."""

    def __init__(self, limit: int) -> None:
        self.limit = limit

    @property
    def limit(self) -> int:
        return self._limit

    @limit.setter
    def limit(self, value: int) -> None:
        if value < 1:
            raise ValueError(f"an admission limit must be at least 1, got {value}")
        self._limit = value

    def on_sample(self, latency_s: float, ok: bool, in_flight: int) -> int:
        return self._limit


class Admission:
    """Admission state shared by the middleware and the admin API; off while ``limiter`` is None."""

    def __init__(
        self,
        metrics: ResilienceMetrics,
        limiter: Limiter | None = None,
        *,
        max_queue_s: float = 0.0,
        retry_after_s: int = 1,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        self.metrics = metrics
        self.max_queue_s = max_queue_s
        self.retry_after_s = retry_after_s
        self.clock = clock
        self._in_flight = 0
        self._waiters: deque[asyncio.Future[None]] = deque()
        self.limiter = limiter

    @property
    def limiter(self) -> Limiter | None:
        return self._limiter

    @limiter.setter
    def limiter(self, limiter: Limiter | None) -> None:
        self._limiter = limiter
        self._wake()

    @property
    def in_flight(self) -> int:
        return self._in_flight

    @property
    def waiting(self) -> int:
        return len(self._waiters)

    def _has_room(self) -> bool:
        return self._limiter is None or self._in_flight < self._limiter.limit

    async def admit(self) -> str | None:
        """Take a slot and return None, or return why the request is shed."""
        if self._has_room() and not self._waiters:
            self._in_flight += 1
            self.metrics.admission_in_flight.set(self._in_flight)
            return None
        reason = IN_FLIGHT_LIMIT
        if self.max_queue_s > 0:
            waiter = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            admitted = False
            try:
                async with asyncio.timeout(self.max_queue_s):
                    await waiter  # _wake() hands us a slot already taken
                admitted = True
                return None
            except TimeoutError:
                reason = QUEUE_TIME_LIMIT
            finally:
                if waiter.cancelled():
                    with contextlib.suppress(ValueError):
                        self._waiters.remove(waiter)
                elif not admitted:  # granted, but timed out or cancelled in the same instant
                    self._release()
        self.metrics.shed.labels(reason).inc()
        return reason

    def finish(self, latency_s: float, ok: bool) -> None:
        """Free the slot of an admitted request and feed the limiter its outcome."""
        if self._limiter is not None:
            self._limiter.on_sample(latency_s, ok, self._in_flight)
        self._release()

    def _release(self) -> None:
        self._in_flight -= 1
        self._wake()

    def _wake(self) -> None:
        """Hand free slots to the oldest waiters; publish in-flight and the limit."""
        while self._waiters and self._has_room():
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                self._in_flight += 1
        self.metrics.admission_in_flight.set(self._in_flight)
        self.metrics.admission_limit.set(0 if self._limiter is None else self._limiter.limit)


class AdmissionMiddleware:
    """Sheds requests beyond the admission limit with a fast 503; exempt paths always pass."""

    def __init__(
        self,
        app: ASGIApp,
        admission: Admission,
        exempt: Iterable[str] = DEFAULT_EXEMPT,
        error_statuses: Collection[int] = ERROR_STATUSES,
    ) -> None:
        self.app = app
        self.admission = admission
        self.exempt = tuple(path.rstrip("/") for path in exempt)
        self.error_statuses = frozenset(error_statuses)

    def is_exempt(self, path: str) -> bool:
        return any(path == prefix or path.startswith(prefix + "/") for prefix in self.exempt)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or self.is_exempt(scope["path"]):
            await self.app(scope, receive, send)
            return
        admission = self.admission
        reason = await admission.admit()
        if reason is not None:
            headers = {"Retry-After": str(admission.retry_after_s)}
            await JSONResponse({"detail": reason}, 503, headers)(scope, receive, send)
            return
        status = 500  # what the client sees if the app fails before it starts a response

        async def send_with_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        ok = False
        started = admission.clock()
        try:
            await self.app(scope, receive, send_with_status)
            ok = status not in self.error_statuses
        finally:
            admission.finish(admission.clock() - started, ok)
