"""``/healthz`` (the process is alive) and ``/readyz`` (Postgres reachable, schema ready).

Readiness uses its own short connection, never the pool under test: an exhausted pool is
overload, not an outage, and must not hide a database that is really down (or the reverse).
"""

from __future__ import annotations

import asyncpg
from fastapi import APIRouter
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from demo_service.db import UNAVAILABLE_ERRORS
from demo_service.deps import ServicesDep
from demo_service.schema import schema_ready

router = APIRouter(tags=["health"])

_NOT_READY: tuple[type[Exception], ...] = (*UNAVAILABLE_ERRORS, asyncpg.PostgresError)


class Health(BaseModel):
    status: str
    detail: str | None = None


def _unavailable(detail: str) -> JSONResponse:
    return JSONResponse(Health(status="unavailable", detail=detail).model_dump(), 503)


@router.get("/healthz", response_model=Health)
async def healthz() -> Health:
    return Health(status="ok")


@router.get("/readyz", response_model=Health, responses={503: {"model": Health}})
async def readyz(services: ServicesDep) -> Health | JSONResponse:
    settings = services.settings.db
    try:
        connection = await asyncpg.connect(settings.dsn, timeout=settings.connect_timeout_s)
        try:
            ready = await schema_ready(connection)
        finally:
            await connection.close(timeout=settings.connect_timeout_s)
    except _NOT_READY as exc:
        return _unavailable(f"database unavailable: {type(exc).__name__}")
    if not ready:
        return _unavailable("schema not ready")
    return Health(status="ready")
