"""A circuit breaker for one dependency: closed → open → half-open → closed, exported as metrics.

Closed, it keeps the outcomes of the last ``window`` calls and opens once it holds ``min_calls``
or more of which at least ``failure_ratio`` failed (a count-based window, like resilience4j's).
Open, it refuses calls with :class:`BreakerOpen` for ``cooldown_s``; the first call after that
makes it half-open. Half-open admits exactly ``probes`` calls and refuses the rest (no stampede):
a probe failure re-opens it, ``probes`` successes close it. ``failures`` says which exceptions
are failures; others count as successes (the dependency answered). Cancelled calls count for
nothing (a cancelled probe frees its slot), nor do calls begun before the latest state change.
A disabled breaker lets everything through and records nothing.
"""

from __future__ import annotations

import asyncio
import enum
import time
from collections import deque
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from types import TracebackType
from typing import NoReturn, ParamSpec, TypeVar

from demo_service.metrics import ResilienceMetrics

P = ParamSpec("P")
T = TypeVar("T")
Failures = tuple[type[BaseException], ...] | Callable[[BaseException], bool]


class State(enum.IntEnum):
    """Breaker states; the values are what ``brink_breaker_state`` exports."""

    CLOSED = 0
    HALF_OPEN = 1
    OPEN = 2


class BreakerOpen(Exception):
    """Refused without trying: the breaker is open, or half-open with every probe out."""

    def __init__(self, target: str, retry_after_s: float) -> None:
        super().__init__(f"circuit breaker for {target} is open")
        self.target = target
        self.retry_after_s = retry_after_s


class CircuitBreaker:
    """Guards calls to ``target``: ``async with breaker: ...`` or ``await breaker.call(fn)``."""

    def __init__(
        self,
        target: str,
        metrics: ResilienceMetrics,
        *,
        failure_ratio: float = 0.5,
        window: int = 20,
        min_calls: int = 10,
        cooldown_s: float = 5.0,
        probes: int = 1,
        failures: Failures = (Exception,),
        enabled: bool = True,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not (0 < failure_ratio <= 1 and 1 <= min_calls <= window) or cooldown_s < 0:
            raise ValueError(
                "need 0 < failure_ratio <= 1, 1 <= min_calls <= window, cooldown_s >= 0"
            )
        if probes < 1:
            raise ValueError("a half-open breaker needs probes >= 1")
        self.target = target
        self._metrics = metrics
        self._failure_ratio = failure_ratio
        self._min_calls = min_calls
        self._cooldown_s = cooldown_s
        self._probes = probes
        self._is_failure = failures if callable(failures) else lambda e: isinstance(e, failures)
        self._clock = clock
        self._enabled = enabled
        self._outcomes: deque[bool] = deque(maxlen=window)  # True: the call failed
        self._state, self._generation = State.CLOSED, 0
        self._new_period()
        # The generation each pending ``async with`` entered in (None: let through unrecorded).
        self._tickets: ContextVar[tuple[int | None, ...]] = ContextVar(f"breaker-{target}")
        metrics.breaker_state.labels(target).set(State.CLOSED)

    @property
    def state(self) -> State:
        return self._state

    @property
    def enabled(self) -> bool:
        return self._enabled

    @enabled.setter
    def enabled(self, value: bool) -> None:
        self._enabled = value  # starts again closed, with an empty window
        self.reset()

    def reset(self) -> None:
        self._transition(State.CLOSED)

    async def call(self, fn: Callable[P, Awaitable[T]], *args: P.args, **kwargs: P.kwargs) -> T:
        async with self:
            return await fn(*args, **kwargs)

    async def __aenter__(self) -> CircuitBreaker:
        self._tickets.set((*self._tickets.get(()), self._admit()))
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        *outer, ticket = self._tickets.get()
        self._tickets.set(tuple(outer))
        if ticket == self._generation:
            self._record(exc)

    def _admit(self) -> int | None:
        if not self._enabled:
            return None
        if self._state is State.OPEN:
            remaining = self._opened_at + self._cooldown_s - self._clock()
            if remaining > 0:
                self._reject(remaining)
            self._transition(State.HALF_OPEN)
        if self._state is State.HALF_OPEN:
            if self._probes_left == 0:
                self._reject(self._cooldown_s)
            self._probes_left -= 1
        return self._generation

    def _reject(self, retry_after_s: float) -> NoReturn:
        self._metrics.breaker_rejected.labels(self.target).inc()
        raise BreakerOpen(self.target, retry_after_s)

    def _record(self, exc: BaseException | None) -> None:
        if isinstance(exc, asyncio.CancelledError):
            if self._state is State.HALF_OPEN:
                self._probes_left += 1
            return
        failed = exc is not None and self._is_failure(exc)
        if self._state is State.HALF_OPEN:
            self._probe_successes += 1
            if failed or self._probe_successes >= self._probes:
                self._transition(State.OPEN if failed else State.CLOSED)
            return
        self._outcomes.append(failed)
        count = len(self._outcomes)
        if count >= self._min_calls and sum(self._outcomes) >= self._failure_ratio * count:
            self._transition(State.OPEN)

    def _transition(self, to: State) -> None:
        self._generation += 1  # calls still pending from the old state will not be counted
        self._new_period()
        if to is not self._state:
            self._state = to
            self._metrics.breaker_state.labels(self.target).set(to)
            self._metrics.breaker_transitions.labels(self.target, to.name.lower()).inc()

    def _new_period(self) -> None:
        self._outcomes.clear()
        self._opened_at = self._clock()
        self._probes_left, self._probe_successes = self._probes, 0
