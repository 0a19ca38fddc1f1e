"""The asyncpg pool under test, instrumented: every checkout is measured and attributed.

The checkout waits as long as the live ``db_acquire`` deadline allows (none: unbounded) and then
raises :class:`PoolExhausted`. asyncpg cannot resize a pool, so :meth:`Database.resize` builds a
new one (its size, and its floor of connections opened up front) and swaps it in
(:class:`~demo_service.generations.Generations`): new checkouts use the new pool at once, each
checkout returns its connection to the pool it came from, and the old pool is closed only once
nobody is waiting on it or holding one of its connections — no request fails because of the
swap. The metrics' pool collector reads whichever pool is current.

A connection that broke under a request (Postgres restarted or killed) is dropped on release,
never raised from it: asyncpg terminates a connection it cannot reset and frees its slot, and
the next checkout opens a fresh one, so the pool reconnects by itself once Postgres is back.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import cast

import asyncpg

from demo_service.generations import Generations
from demo_service.http_metrics import current_route
from demo_service.metrics import PoolStats, ServiceMetrics
from demo_service.resilience.deadlines import Deadline, DeadlineExceeded
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
    # A connection the server dropped while idle (a restart's FATAL 57P01 not yet read) is
    # left mid-protocol: its next statement fails with "another operation is in progress".
    asyncpg.InternalClientError,
)


_log = logging.getLogger(__name__)


class PoolExhausted(DeadlineExceeded):
    """No pool connection became free within the ``db_acquire`` deadline."""

    def __init__(self, timeout_s: float) -> None:
        super().__init__("db_acquire", timeout_s)
        self.args = (f"database pool exhausted: no connection free within {timeout_s:g} s",)
        self.timeout_s = timeout_s


class PoolUnreachable(RuntimeError):
    """Postgres could not be reached to open a pool: the service stops with it at start-up, a
    live resize answers 503 and keeps the pool it has."""


class PoolRefused(RuntimeError):
    """Postgres would not open that many connections (its own ``max_connections``): the
    service stops with it at start-up, a live resize answers 409 and keeps the pool it has."""


def redact_dsn(dsn: str) -> str:
    """The DSN without its password, for messages."""
    scheme, sep, rest = dsn.partition("://")
    userinfo, at, host = rest.rpartition("@")
    if not at or ":" not in userinfo:
        return dsn
    return f"{scheme}{sep}{userinfo.split(':', 1)[0]}:***@{host}"


async def _create_pool(settings: DatabaseSettings, max_size: int, min_size: int) -> asyncpg.Pool:
    """A pool of at most ``max_size`` that opens ``min_size`` up front (never more than the max)."""
    try:
        return await asyncpg.create_pool(
            settings.dsn,
            min_size=min(min_size, max_size),
            max_size=max_size,
            timeout=settings.connect_timeout_s,
        )
    except asyncpg.TooManyConnectionsError as exc:
        raise PoolRefused(
            f"Postgres refused a pool opening {min(min_size, max_size)} connections up front"
            f" (of at most {max_size}): {exc}"
        ) from exc
    except UNAVAILABLE_ERRORS as exc:
        raise PoolUnreachable(
            f"cannot reach Postgres at BRINK_DB__DSN={redact_dsn(settings.dsn)}: {exc!r}"
        ) from exc


async def _release(
    pool: asyncpg.Pool, connection: asyncpg.pool.PoolConnectionProxy[asyncpg.Record]
) -> None:
    """Give ``connection`` back; if it broke, asyncpg has already terminated it: log, go on.

    asyncpg resets a connection on release and, when the reset fails (a connection lost in
    mid-protocol raises ``InternalClientError``, a dead socket an ``OSError``), terminates it,
    frees its slot and re-raises. By then the request's outcome is decided: raising here
    would mask the error that broke the connection, or turn a finished request into a 500.
    """
    try:
        await pool.release(connection)
    except Exception as exc:  # asyncpg terminated it whatever the error: nothing leaks
        _log.warning("dropped a broken pool connection on release: %r", exc)


def _unbounded(metrics: ServiceMetrics) -> Callable[[], Deadline]:
    deadline = Deadline("db_acquire", None, metrics.resilience)
    return lambda: deadline


class Database:
    """The pool plus its instrumentation: waiters, acquire wait, busy time, timeouts."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        settings: DatabaseSettings,
        metrics: ServiceMetrics,
        acquire_deadline: Callable[[], Deadline] | None = None,
    ) -> None:
        self._pools = Generations(pool, asyncpg.Pool.close)
        self._settings = settings
        self._metrics = metrics
        self._acquire_deadline = acquire_deadline or _unbounded(metrics)
        self._resizing = asyncio.Lock()
        metrics.pool.source = self.stats

    @classmethod
    async def open(
        cls,
        settings: DatabaseSettings,
        metrics: ServiceMetrics,
        acquire_deadline: Callable[[], Deadline] | None = None,
    ) -> Database:
        pool = await _create_pool(settings, settings.pool_max, settings.pool_min)
        return cls(pool, settings, metrics, acquire_deadline)

    async def close(self) -> None:
        self._metrics.pool.source = None
        await self._pools.aclose()

    async def resize(self, max_size: int, min_size: int) -> None:
        """Swap in a new pool of ``max_size`` that opens ``min_size`` connections up front (at
        most ``max_size``); the old one closes once its users are gone. Nothing to do when the
        pool in use has those sizes already."""
        async with self._resizing:
            pool = self._pools.current
            if (max_size, min(min_size, max_size)) == (pool.get_max_size(), pool.get_min_size()):
                return
            self._pools.swap(await _create_pool(self._settings, max_size, min_size))

    def stats(self) -> PoolStats:
        pool = self._pools.current
        return PoolStats(
            size=pool.get_size(),
            idle=pool.get_idle_size(),
            max_size=pool.get_max_size(),
            min_size=pool.get_min_size(),
        )

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[asyncpg.Connection]:
        """Check a connection out for the current route; :class:`PoolExhausted` on timeout."""
        metrics, deadline = self._metrics, self._acquire_deadline()
        with self._pools.using() as pool:  # counted as a user of this pool until the end
            metrics.db_waiters.inc()
            started = time.perf_counter()
            try:
                async with deadline():
                    connection = await pool.acquire()
            except DeadlineExceeded:
                metrics.db_acquire_timeouts.inc()
                raise PoolExhausted(deadline.seconds or 0.0) from None
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
                    await _release(pool, connection)
                finally:
                    metrics.db_busy.labels(route).inc(time.perf_counter() - acquired)
