"""The asyncpg pool under test, instrumented: every checkout is measured and attributed."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import cast

import asyncpg

from demo_service.http_metrics import current_route
from demo_service.metrics import PoolStats, ServiceMetrics
from demo_service.settings import DatabaseSettings

# Errors that mean "the database is not reachable right now", not "this request is wrong".
UNAVAILABLE_ERRORS: tuple[type[Exception], ...] = (
    OSError,
    TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.CannotConnectNowError,
    asyncpg.AdminShutdownError,
    asyncpg.CrashShutdownError,
)


class PoolExhausted(Exception):
    """No pool connection became free within the acquire timeout."""

    def __init__(self, timeout_s: float) -> None:
        super().__init__(f"database pool exhausted: no connection free within {timeout_s:g} s")
        self.timeout_s = timeout_s


def redact_dsn(dsn: str) -> str:
    """The DSN without its password, for messages."""
    scheme, sep, rest = dsn.partition("://")
    userinfo, at, host = rest.rpartition("@")
    if not at or ":" not in userinfo:
        return dsn
    return f"{scheme}{sep}{userinfo.split(':', 1)[0]}:***@{host}"


class Database:
    """The pool plus its instrumentation: waiters, acquire wait, busy time, timeouts."""

    def __init__(
        self, pool: asyncpg.Pool, settings: DatabaseSettings, metrics: ServiceMetrics
    ) -> None:
        self._pool = pool
        self._settings = settings
        self._metrics = metrics
        metrics.pool.source = self.stats

    @classmethod
    async def open(cls, settings: DatabaseSettings, metrics: ServiceMetrics) -> Database:
        try:
            pool = await asyncpg.create_pool(
                settings.dsn,
                min_size=settings.pool_min,
                max_size=settings.pool_max,
                timeout=settings.connect_timeout_s,
            )
        except UNAVAILABLE_ERRORS as exc:
            raise RuntimeError(
                f"cannot reach Postgres at BRINK_DB__DSN={redact_dsn(settings.dsn)}: {exc!r}"
            ) from exc
        return cls(pool, settings, metrics)

    async def close(self) -> None:
        self._metrics.pool.source = None
        await self._pool.close()

    def stats(self) -> PoolStats:
        return PoolStats(
            size=self._pool.get_size(),
            idle=self._pool.get_idle_size(),
            max_size=self._pool.get_max_size(),
            min_size=self._pool.get_min_size(),
        )

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[asyncpg.Connection]:
        """Check a connection out for the current route; :class:`PoolExhausted` on timeout."""
        metrics = self._metrics
        timeout_s = self._settings.acquire_timeout_s
        metrics.db_waiters.inc()
        started = time.perf_counter()
        try:
            connection = await self._pool.acquire(timeout=timeout_s)
        except TimeoutError:
            metrics.db_acquire_timeouts.inc()
            raise PoolExhausted(timeout_s) from None
        finally:
            acquired = time.perf_counter()
            metrics.db_waiters.dec()
            metrics.db_acquire_wait.observe(acquired - started)
        route = current_route.get()
        metrics.db_acquisitions.labels(route).inc()
        try:
            # The pool hands out a proxy that forwards every Connection method.
            yield cast(asyncpg.Connection, connection)
        finally:
            try:
                await self._pool.release(connection)
            finally:
                metrics.db_busy.labels(route).inc(time.perf_counter() - acquired)
