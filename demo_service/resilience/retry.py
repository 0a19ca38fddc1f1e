"""Retry policies for dependency calls: ``await policy.call(target, fn, is_retryable)``.

:class:`NoRetry` (off), :class:`NaiveRetry` (immediate, fixed count: the storm maker) and
:class:`BudgetedRetry` (capped exponential backoff with full jitter, few attempts, and a retry
budget of about 10% of recent calls). Counts ``calls{target}`` once per call, ``attempts{target}``
per attempt, ``retries{target,policy}`` per retry. ``CancelledError`` is never retried.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

import asyncpg
import httpx2

from demo_service.external import ExternalError
from demo_service.metrics import ResilienceMetrics
from demo_service.resilience.deadlines import DeadlineExceeded

T = TypeVar("T")
IsRetryable = Callable[[Exception], bool]


class RetryPolicy:
    """The loop every policy shares; on its own, one attempt. The app may swap policies live."""

    name = "none"

    def __init__(self, metrics: ResilienceMetrics, attempts: int = 1) -> None:
        if attempts < 1:
            raise ValueError(f"attempts must be at least 1, not {attempts}")
        self.attempts = attempts
        self._metrics = metrics

    async def call(
        self, target: str, fn: Callable[[], Awaitable[T]], is_retryable: IsRetryable
    ) -> T:
        """Await ``fn()`` (a new attempt each time), retrying what ``is_retryable`` accepts."""
        self._metrics.calls.labels(target).inc()
        self._on_call(target)
        attempt = 1
        while True:
            self._metrics.attempts.labels(target).inc()
            try:
                return await fn()
            except Exception as exc:  # CancelledError is a BaseException: never retried
                if attempt >= self.attempts or not is_retryable(exc) or not self._may_retry(target):
                    raise
            await self._backoff(attempt)
            attempt += 1
            self._metrics.retries.labels(target, self.name).inc()

    def _on_call(self, target: str) -> None:
        """A call starts."""

    def _may_retry(self, target: str) -> bool:
        return True

    async def _backoff(self, attempt: int) -> None:
        """Wait before the retry that follows ``attempt``: not at all here."""


class NoRetry(RetryPolicy):
    """Retries off: one attempt per call."""

    def __init__(self, metrics: ResilienceMetrics) -> None:
        super().__init__(metrics, attempts=1)


class NaiveRetry(RetryPolicy):
    """Immediate retries, ``attempts`` tries in all: what most code does."""

    name = "naive"

    def __init__(self, metrics: ResilienceMetrics, attempts: int = 4) -> None:
        super().__init__(metrics, attempts)


@dataclass(slots=True)
class _Slot:
    index: int
    calls: int = 0
    retries: int = 0


class RetryBudget:
    """Allows ``ratio`` times the calls of the last ``window_s`` plus ``min_retries`` retries.

    A window sliding in ``slots`` steps (Finagle's RetryBudget and its TTL, as counts): old calls
    stop paying for retries, so a long healthy spell cannot fund a storm later.
    """

    def __init__(
        self,
        ratio: float = 0.1,
        window_s: float = 10.0,
        min_retries: int = 3,
        clock: Callable[[], float] = time.monotonic,
        slots: int = 10,
    ) -> None:
        if not 0 <= ratio <= 1 or window_s <= 0 or min_retries < 0 or slots < 1:
            raise ValueError("budget needs 0 ≤ ratio ≤ 1, window_s > 0, min_retries ≥ 0, slots ≥ 1")
        self.ratio, self.window_s, self.min_retries = ratio, window_s, min_retries
        self._clock, self._slots, self._slot_s = clock, slots, window_s / slots
        self._ring: deque[_Slot] = deque()

    def _current(self) -> _Slot:
        index = int(self._clock() // self._slot_s)
        while self._ring and self._ring[0].index <= index - self._slots:
            self._ring.popleft()
        if not self._ring or self._ring[-1].index != index:
            self._ring.append(_Slot(index))
        return self._ring[-1]

    def record_call(self) -> None:
        self._current().calls += 1

    def try_spend(self) -> bool:
        """Take one retry; ``False`` (and nothing taken) when the budget is spent."""
        current = self._current()
        calls, retries = (sum(s.calls for s in self._ring), sum(s.retries for s in self._ring))
        if retries + 1 > self.ratio * calls + self.min_retries:
            return False
        current.retries += 1
        return True


class BudgetedRetry(RetryPolicy):
    """Full-jitter capped exponential backoff, ≤ ``attempts`` tries, a budget per target."""

    name = "budgeted"

    def __init__(
        self,
        metrics: ResilienceMetrics,
        *,
        attempts: int = 3,
        base_delay_s: float = 0.05,
        max_delay_s: float = 1.0,
        budget: Callable[[], RetryBudget] = RetryBudget,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        super().__init__(metrics, attempts)
        self.base_delay_s, self.max_delay_s = base_delay_s, max_delay_s
        self._new_budget, self._sleep, self._jitter = budget, sleep, jitter
        self._budgets: dict[str, RetryBudget] = {}

    def budget(self, target: str) -> RetryBudget:
        if target not in self._budgets:
            self._budgets[target] = self._new_budget()
        return self._budgets[target]

    def _on_call(self, target: str) -> None:
        self.budget(target).record_call()

    def _may_retry(self, target: str) -> bool:
        if self.budget(target).try_spend():
            return True
        self._metrics.retry_budget_exhausted.labels(target).inc()
        return False

    def delay(self, attempt: int) -> float:
        """Full jitter: uniform in [0, min(max_delay_s, base_delay_s * 2^(attempt-1)))."""
        ceiling: float = min(self.max_delay_s, self.base_delay_s * 2.0 ** (attempt - 1))
        return self._jitter() * ceiling

    async def _backoff(self, attempt: int) -> None:
        await self._sleep(self.delay(attempt))


def transient_external(exc: Exception) -> bool:
    """Timeouts, 5xx and connection errors of the external API; not 4xx, bad bodies, pool waits."""
    if isinstance(exc, DeadlineExceeded):
        return exc.stage == "external"
    if not isinstance(exc, ExternalError) or exc.outcome == "pool_timeout":
        return False  # a full local pool is overload: a retry only adds to it
    if isinstance(exc.__cause__, httpx2.HTTPStatusError):
        return exc.__cause__.response.status_code >= 500
    return exc.outcome in ("timeout", "transport_error")


_TRANSIENT_DB = (
    ConnectionError,
    asyncpg.PostgresConnectionError,
    asyncpg.CannotConnectNowError,
    asyncpg.SerializationError,
    asyncpg.DeadlockDetectedError,
    asyncpg.InternalClientError,  # releasing a connection Postgres dropped (restart): retry afresh
)


def transient_db(exc: Exception) -> bool:
    """Lost connections, serialization failures, deadlocks; ``fn`` must be the whole transaction.

    Not pool exhaustion nor DB deadlines: both mean overload, and a retry adds to it.
    """
    return isinstance(exc, _TRANSIENT_DB)
