"""Pure ASGI middleware that measures every HTTP request by its route template."""

from __future__ import annotations

import time
from collections.abc import Iterable
from contextvars import ContextVar

from prometheus_client import Counter, Gauge, Histogram
from starlette.routing import compile_path
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from demo_service.metrics import ServiceMetrics

current_route: ContextVar[str] = ContextVar("current_route", default="<background>")
"""Route template of the request being served; set here, read by the pool and the handlers."""

UNMATCHED = "<unmatched>"
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


class RouteTemplates:
    """Maps a raw path to the template of the route that serves it (``/items/{item_id}``).

    Built from the app's route paths with Starlette's own path compiler, so the labels are
    exactly the templates the app declares and stay bounded whatever paths clients send.
    """

    def __init__(self, templates: Iterable[str]) -> None:
        self._compiled = [(compile_path(template)[0], template) for template in templates]

    def match(self, path: str) -> str:
        for regex, template in self._compiled:
            if regex.match(path):
                return template
        return UNMATCHED


class HttpMetricsMiddleware:
    """Counts requests by status, times them and tracks in-flight, per route template.

    Labels stay bounded: the route template, never the raw path; unknown methods become
    ``other``. The template is published in :data:`current_route` for the pool's attribution.
    """

    def __init__(self, app: ASGIApp, metrics: ServiceMetrics, routes: RouteTemplates) -> None:
        self.app = app
        self.metrics = metrics
        self.routes = routes
        # Labelled children, looked up once per label set (the label sets are bounded).
        self._in_flight: dict[str, Gauge] = {}
        self._duration: dict[tuple[str, str], Histogram] = {}
        self._requests: dict[tuple[str, str, int], Counter] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        route = self.routes.match(scope["path"])
        method = scope["method"] if scope["method"] in _METHODS else "other"
        status = 500  # what the client sees if the app fails before it starts a response

        async def send_with_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        metrics = self.metrics
        in_flight = self._in_flight.get(route)
        if in_flight is None:
            in_flight = self._in_flight[route] = metrics.http_in_flight.labels(route)
        token = current_route.set(route)
        in_flight.inc()
        started = time.perf_counter()
        try:
            await self.app(scope, receive, send_with_status)
        finally:
            elapsed = time.perf_counter() - started
            in_flight.dec()
            current_route.reset(token)
            duration = self._duration.get((route, method))
            if duration is None:
                duration = self._duration[route, method] = metrics.http_duration.labels(
                    route, method
                )
            duration.observe(elapsed)
            requests = self._requests.get((route, method, status))
            if requests is None:
                requests = self._requests[route, method, status] = metrics.http_requests.labels(
                    route, method, str(status)
                )
            requests.inc()
