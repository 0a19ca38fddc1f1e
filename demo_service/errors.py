"""Domain and infrastructure failures turned into clear HTTP answers, never a bare 500.

Overload answers say when to come back: an exhausted pool, a DB deadline, a full bulkhead and
an open breaker are 503 with ``Retry-After``; an external call past its deadline is 504. The
routes declare these answers in OpenAPI with :func:`demo_service.problems.declared`.
"""

from __future__ import annotations

import math

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from demo_service.db import UNAVAILABLE_ERRORS, PoolExhausted, PoolRefused, PoolUnreachable
from demo_service.external import ExternalError
from demo_service.orders import ItemNotFound, KeyReused, OutOfStock
from demo_service.resilience.breaker import BreakerOpen
from demo_service.resilience.bulkhead import BulkheadFull
from demo_service.resilience.deadlines import DeadlineExceeded


def _problem(status: int, detail: str, retry_after_s: float | None = None) -> JSONResponse:
    headers = None
    if retry_after_s is not None:
        headers = {"Retry-After": str(max(1, math.ceil(retry_after_s)))}
    return JSONResponse({"detail": detail}, status_code=status, headers=headers)


async def _database_unavailable(_: Request, exc: Exception) -> JSONResponse:
    return _problem(503, f"database unavailable: {type(exc).__name__}", retry_after_s=1)


async def _deadline(_: Request, exc: Exception) -> JSONResponse:
    """External: 504 (the dependency was slow). DB stages and pool exhaustion: 503, come back."""
    assert isinstance(exc, DeadlineExceeded)
    if exc.stage == "external":
        return _problem(504, str(exc))
    return _problem(503, str(exc), retry_after_s=1)


async def _breaker_open(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, BreakerOpen)
    return _problem(503, str(exc), retry_after_s=exc.retry_after_s)


async def _bulkhead_full(_: Request, exc: Exception) -> JSONResponse:
    return _problem(503, str(exc), retry_after_s=1)


async def _external(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ExternalError)
    return _problem(exc.status_code, exc.detail)


async def _invalid_request(_: Request, exc: Exception) -> JSONResponse:
    """422 naming each problem, without echoing the input back (it may be huge or not JSON-safe)."""
    assert isinstance(exc, RequestValidationError)
    errors = [
        {"type": error["type"], "loc": list(error["loc"]), "msg": error["msg"]}
        for error in exc.errors()
    ]
    return JSONResponse({"detail": errors}, status_code=422)


def _status(code: int):  # type: ignore[no-untyped-def]
    async def handler(_: Request, exc: Exception) -> JSONResponse:
        return _problem(code, str(exc))

    return handler


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, _invalid_request)
    for error in UNAVAILABLE_ERRORS:
        app.add_exception_handler(error, _database_unavailable)
    # After TimeoutError (one of UNAVAILABLE_ERRORS): the most specific class wins either way.
    app.add_exception_handler(DeadlineExceeded, _deadline)
    app.add_exception_handler(PoolExhausted, _deadline)
    app.add_exception_handler(BreakerOpen, _breaker_open)
    app.add_exception_handler(BulkheadFull, _bulkhead_full)
    app.add_exception_handler(ExternalError, _external)
    app.add_exception_handler(ItemNotFound, _status(404))
    app.add_exception_handler(OutOfStock, _status(409))
    app.add_exception_handler(KeyReused, _status(409))
    # A live pool resize: Postgres refused that many connections, or could not be reached.
    app.add_exception_handler(PoolRefused, _status(409))
    app.add_exception_handler(PoolUnreachable, _database_unavailable)
