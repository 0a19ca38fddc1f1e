"""Domain and infrastructure failures turned into clear HTTP answers, never a bare 500."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from demo_service.db import UNAVAILABLE_ERRORS, PoolExhausted
from demo_service.external import ExternalError
from demo_service.orders import ItemNotFound, KeyReused, OutOfStock


def _problem(status: int, detail: str, retry_after_s: int | None = None) -> JSONResponse:
    headers = {"Retry-After": str(retry_after_s)} if retry_after_s is not None else None
    return JSONResponse({"detail": detail}, status_code=status, headers=headers)


async def _pool_exhausted(_: Request, exc: Exception) -> JSONResponse:
    return _problem(503, str(exc), retry_after_s=1)


async def _database_unavailable(_: Request, exc: Exception) -> JSONResponse:
    return _problem(503, f"database unavailable: {type(exc).__name__}", retry_after_s=1)


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
    app.add_exception_handler(PoolExhausted, _pool_exhausted)
    for error in UNAVAILABLE_ERRORS:
        app.add_exception_handler(error, _database_unavailable)
    app.add_exception_handler(ExternalError, _external)
    app.add_exception_handler(ItemNotFound, _status(404))
    app.add_exception_handler(OutOfStock, _status(409))
    app.add_exception_handler(KeyReused, _status(409))
