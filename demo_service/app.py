"""The demo service: an app factory and a lifespan that owns the pool and the HTTP client.

Run it with ``python -m demo_service`` (reads ``BRINK_*``) or
``uvicorn --factory demo_service.app:create_app``. Nothing is built at import time.

The factory builds the app's live state that needs no I/O — metrics, the resilience mechanisms
(:class:`Resilience`, read by the shedding middleware) and the fault knobs — and the lifespan
opens the pool and the external client around them. Middleware, outermost first: HTTP metrics
(so shed requests are counted and timed like any other), the declared body-size check (413
before a slot is taken), admission (sheds before any pool is touched), the CPU-burn fault, then
the routes.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from demo_service.body_limit import BodyLimit
from demo_service.db import Database
from demo_service.deps import Services
from demo_service.errors import install_error_handlers
from demo_service.external import ExternalApi
from demo_service.faults import CpuBurnMiddleware, Faults, FaultValues
from demo_service.http_metrics import HttpMetricsMiddleware, RouteTemplates
from demo_service.loop_lag import loop_lag_monitor
from demo_service.metrics import ServiceMetrics
from demo_service.resilience.runtime import Resilience
from demo_service.resilience.shedding import AdmissionMiddleware
from demo_service.routes import cpu, health, items, orders, shipping
from demo_service.routes.admin import admin_router
from demo_service.schema import ensure_schema
from demo_service.settings import Settings, load_settings


def start_up_resilience(settings: Settings, metrics: ServiceMetrics) -> Resilience:
    """The preset and overrides of ``BRINK_RESILIENCE__*``, with ``BRINK_DB__ACQUIRE_TIMEOUT_S``
    as a shorthand for the ``db_acquire`` deadline (the resilience setting wins)."""
    overrides = settings.resilience.overrides()
    if settings.db.acquire_timeout_s is not None:
        deadlines = overrides.setdefault("deadlines", {})
        deadlines.setdefault("db_acquire_s", settings.db.acquire_timeout_s)
    return Resilience(metrics.resilience, settings.resilience.preset, overrides)


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the demo service for ``settings`` (read from the environment when omitted)."""
    settings = settings or load_settings()
    metrics = ServiceMetrics(CollectorRegistry())
    resilience = start_up_resilience(settings, metrics)
    faults = Faults(FaultValues.at_start(settings), metrics)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        db = await Database.open(settings.db, metrics, lambda: resilience.deadlines.db_acquire)
        try:
            async with db.connection() as connection:
                await ensure_schema(connection, settings.db)
            external = ExternalApi.from_settings(settings.external, metrics, guard=resilience)
            try:
                app.state.services = Services(settings, metrics, db, external, resilience, faults)
                async with loop_lag_monitor(metrics.loop_lag, settings.server.loop_lag_interval_s):
                    yield
            finally:
                await external.aclose()
        finally:
            await db.close()

    app = FastAPI(
        title="brink demo service",
        summary="The sacrificial backend: one route per pressure point.",
        version="0.1.0",
        lifespan=lifespan,
    )
    routers = [module.router for module in (health, items, orders, shipping, cpu)]
    if settings.admin_token is not None:
        routers.append(admin_router(settings.admin_token))
    for router in routers:
        app.include_router(router)
    install_error_handlers(app)

    # add_middleware wraps what is there: the last one added is the outermost.
    app.add_middleware(CpuBurnMiddleware, faults=faults, metrics=metrics)
    app.add_middleware(AdmissionMiddleware, admission=resilience.admission)
    app.add_middleware(BodyLimit, max_bytes=settings.server.max_body_bytes)
    if settings.server.metrics_enabled:

        @app.get("/metrics", include_in_schema=False)
        async def prometheus_metrics() -> Response:
            return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

        templates = [getattr(route, "path", "") for route in app.routes]
        templates += [route.path for router in routers for route in router.routes]
        app.add_middleware(
            HttpMetricsMiddleware, metrics=metrics, routes=RouteTemplates(filter(None, templates))
        )
    return app
