"""Open-model pacing, free of Locust: when each arrival happens, and what a failure was.

:func:`dispatch` is a dispatcher's loop with the clock and the sleep injected, so its schedule
is tested without sleeping; :func:`error_kind` names a failed request with a bounded label.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any, Protocol

from loadtests.series import Series

MAX_LAG_S = 1.0
"""A dispatcher more than this late stops catching up and counts the arrivals as dropped."""


def error_kind(status: int, error: BaseException | None) -> str | None:
    """What went wrong with a request, as a bounded label; None when nothing did."""
    if error is not None and status == 0:
        original = getattr(error, "original", None)  # geventhttpclient's RetriesExceeded
        while isinstance(original, BaseException):
            error, original = original, getattr(original, "original", None)
        text = str(error).lower()
        if isinstance(error, TimeoutError) or "timed out" in text or "timeout" in text:
            return "timeout"
        if isinstance(error, ConnectionError | OSError):
            return "connection"
        return "client_error"
    if status >= 400 or status == 0:
        return f"http_{status}"
    return None


class Arrivals(Protocol):
    """Where a dispatcher sends its arrivals (the process's ArrivalEngine)."""

    rate_per_dispatcher: float
    series: Series

    def arrive(self) -> None: ...


ARRIVALS = ("poisson", "even")


def _poisson(rng: random.Random, rate: float) -> float:
    return rng.expovariate(rate)


def _even(rng: random.Random, rate: float) -> float:
    return 1.0 / rate


def dispatch(
    engine: Arrivals,
    rng: random.Random,
    clock: Callable[[], float],
    sleep: Callable[[float], Any],
    arrivals: str = "poisson",
) -> None:
    """A dispatcher's life: arrivals at ``engine.rate_per_dispatcher``, forever.

    ``poisson``: exponential gaps, bursty like independent users (realistic queueing).
    ``even``: equal gaps; the offered rate per stage is then near exact, which suits
    measurements. The schedule is absolute (late wake-ups catch up) and starts at a random
    phase, so dispatchers started together do not fire in lockstep.
    """
    if arrivals not in ARRIVALS:
        raise ValueError(f"arrivals must be one of {ARRIVALS}, got {arrivals!r}")
    gap = _poisson if arrivals == "poisson" else _even
    next_at = clock()
    phase = True
    while True:
        rate = engine.rate_per_dispatcher
        if rate <= 0:
            sleep(0.1)
            next_at, phase = clock(), True
            continue
        next_at += rng.uniform(0, 1 / rate) if phase else gap(rng, rate)
        phase = False
        lag = clock() - next_at
        if lag < 0:
            sleep(-lag)
        elif lag > MAX_LAG_S:
            missed = int(lag * rate)
            engine.series.drop(clock(), missed)
            next_at = clock()
        engine.arrive()
