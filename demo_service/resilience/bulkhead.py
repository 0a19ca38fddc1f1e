"""A bulkhead: a concurrency limit for one route family, so a slow dependency starves no one else.

``async with bulkhead:`` admits at most ``limit`` callers at once. A caller that finds it full waits
in FIFO order for at most ``max_wait_s`` (0: not at all), then gets :class:`BulkheadFull` (the
route answers 503 + Retry-After). ``limit=None`` turns it off. :meth:`Bulkhead.resize` changes
the limit live: growing admits waiters at once, shrinking lets the calls inside finish and admits
no one until the count is below the new limit. A freed slot is handed straight to the next waiter;
a waiter cancelled after being handed a slot passes it on, so no slot ever leaks. Exports
``bulkhead_in_flight{name}``, ``bulkhead_limit{name}`` (0 when off), ``bulkhead_rejected{name}``.
"""

from __future__ import annotations

import asyncio
from collections import deque
from types import TracebackType

from demo_service.metrics import ResilienceMetrics


class BulkheadFull(Exception):
    """The bulkhead stayed full for ``max_wait_s``; answer 503 with ``Retry-After``."""

    def __init__(self, name: str, limit: int, max_wait_s: float) -> None:
        super().__init__(f"bulkhead {name!r} full: {limit} in flight, waited {max_wait_s:g} s")
        self.name = name
        self.limit = limit
        self.max_wait_s = max_wait_s


class Bulkhead:
    """``async with bulkhead: ...``; one instance per route family, shared by its requests."""

    def __init__(
        self, name: str, limit: int | None, max_wait_s: float, metrics: ResilienceMetrics
    ) -> None:
        if max_wait_s < 0:
            raise ValueError(f"max_wait_s must be ≥ 0, not {max_wait_s!r}")
        self.name = name
        self.max_wait_s = max_wait_s
        self._in_flight = 0
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._gauge_in_flight = metrics.bulkhead_in_flight.labels(name)
        self._gauge_limit = metrics.bulkhead_limit.labels(name)
        self._rejected = metrics.bulkhead_rejected.labels(name)
        self._limit: int | None = None
        self.resize(limit)
        self._gauge_in_flight.set(0)

    @property
    def limit(self) -> int | None:
        return self._limit

    @property
    def in_flight(self) -> int:
        return self._in_flight

    @property
    def waiting(self) -> int:
        return len(self._waiters)

    def resize(self, limit: int | None) -> None:
        """Set the limit now (``None``: off); safe while calls are inside or waiting."""
        if limit is not None and limit < 1:
            raise ValueError(f"bulkhead limit must be ≥ 1 or None, not {limit!r}")
        self._limit = limit
        self._gauge_limit.set(limit or 0)
        self._admit_waiters()

    def _has_room(self) -> bool:
        return self._limit is None or self._in_flight < self._limit

    def _take(self) -> None:
        self._in_flight += 1
        self._gauge_in_flight.set(self._in_flight)

    def _release(self) -> None:
        self._in_flight -= 1
        self._gauge_in_flight.set(self._in_flight)
        self._admit_waiters()

    def _admit_waiters(self) -> None:
        while self._waiters and self._has_room():
            waiter = self._waiters.popleft()
            if not waiter.done():  # skip waiters cancelled but not yet removed
                self._take()
                waiter.set_result(None)

    async def __aenter__(self) -> None:
        if self._has_room() and not self._waiters:
            self._take()
            return
        if self.max_wait_s == 0:
            raise self._rejection()
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            async with asyncio.timeout(self.max_wait_s):
                await waiter
        except TimeoutError:
            if _granted(waiter):
                return  # handed a slot just as the wait ran out: admitted
            self._forget(waiter)
            raise self._rejection() from None
        except BaseException:  # cancelled while waiting
            if _granted(waiter):
                self._release()  # handed a slot just before: pass it on
            else:
                self._forget(waiter)
            raise

    def _forget(self, waiter: asyncio.Future[None]) -> None:
        waiter.cancel()
        if waiter in self._waiters:
            self._waiters.remove(waiter)

    def _rejection(self) -> BulkheadFull:
        self._rejected.inc()
        return BulkheadFull(self.name, self._limit or 0, self.max_wait_s)

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._release()


def _granted(waiter: asyncio.Future[None]) -> bool:
    return waiter.done() and not waiter.cancelled()
