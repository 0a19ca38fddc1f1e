"""An adaptive admission limit: AIMD on a latency target, the third preset's :class:`Limiter`.

Rule, per finished request (``latency_s``, ``ok``, ``in_flight`` it ran alongside):

* The smoothed latency is an EWMA of the latencies of ok requests: ``s += smoothing * (x - s)``.
  Failed requests stay out of it (a fast error must not hide a slow backend).
* **Congested** when the request failed (an error or a timeout) or the smoothed latency is above
  ``target_latency_s``. Then the limit is multiplied by ``backoff_ratio``, at most once per
  ``decrease_interval_s`` (the requests already admitted under the old limit still finish slow:
  cutting again for each of them would collapse the limit, as TCP cuts once per round trip).
* **Otherwise** the limit grows by ``increase / limit`` per sample, i.e. by about ``increase``
  per round trip (TCP's congestion avoidance), but only while the limit is in use
  (``in_flight >= min_utilisation * limit``): an idle service must not earn an unbounded limit.
* The limit stays within ``[min_limit, max_limit]``; the exported limit is its floor.

AIMD rather than a gradient limiter (Netflix's Gradient2, Envoy's adaptive concurrency): the
target is an explicit, SLO-like number one can read on the dashboards and reason about, where a
gradient limiter's learned baseline (long-window RTT) drifts up under sustained queueing. Set the
target a few times the healthy latency of the routes behind the limit.
:func:`aimd_update` is pure; :class:`AimdLimiter` holds the state and the injected clock.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, replace


@dataclass(frozen=True)
class AimdConfig:
    initial_limit: int = 20
    min_limit: int = 2
    max_limit: int = 200
    target_latency_s: float = 0.1
    backoff_ratio: float = 0.7
    increase: float = 1.0
    smoothing: float = 0.2
    decrease_interval_s: float = 0.25
    min_utilisation: float = 0.5

    def __post_init__(self) -> None:
        problems = []
        if not 1 <= self.min_limit <= self.initial_limit <= self.max_limit:
            problems.append("need 1 <= min_limit <= initial_limit <= max_limit")
        if not 0 < self.backoff_ratio < 1:
            problems.append("backoff_ratio must be in (0, 1)")
        if not 0 < self.smoothing <= 1:
            problems.append("smoothing must be in (0, 1]")
        if self.target_latency_s <= 0 or self.increase <= 0:
            problems.append("target_latency_s and increase must be > 0")
        if self.decrease_interval_s < 0 or self.min_utilisation < 0:
            problems.append("decrease_interval_s and min_utilisation must be >= 0")
        if problems:
            raise ValueError(f"bad AIMD config {self}: " + "; ".join(problems))


@dataclass(frozen=True)
class AimdState:
    limit: float
    smoothed_latency_s: float | None = None
    last_decrease_at: float = -math.inf


def aimd_update(
    config: AimdConfig, state: AimdState, latency_s: float, ok: bool, in_flight: int, now: float
) -> AimdState:
    """The state after one finished request, observed at ``now``."""
    smoothed = state.smoothed_latency_s
    if ok:
        smoothed = (
            latency_s if smoothed is None else smoothed + config.smoothing * (latency_s - smoothed)
        )
    if not ok or (smoothed is not None and smoothed > config.target_latency_s):
        if now - state.last_decrease_at < config.decrease_interval_s:
            return replace(state, smoothed_latency_s=smoothed)
        limit = max(float(config.min_limit), state.limit * config.backoff_ratio)
        return AimdState(limit, smoothed, now)
    limit = state.limit
    if in_flight >= config.min_utilisation * limit:
        limit = min(float(config.max_limit), limit + config.increase / limit)
    return AimdState(limit, smoothed, state.last_decrease_at)


class AimdLimiter:
    """The adaptive admission :class:`~demo_service.resilience.shedding.Limiter` (AIMD)."""

    def __init__(
        self, config: AimdConfig | None = None, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.config = config or AimdConfig()
        self._clock = clock
        self._state = AimdState(float(self.config.initial_limit))

    @property
    def limit(self) -> int:
        return math.floor(self._state.limit)

    @property
    def state(self) -> AimdState:
        return self._state

    def on_sample(self, latency_s: float, ok: bool, in_flight: int) -> int:
        self._state = aimd_update(self.config, self._state, latency_s, ok, in_flight, self._clock())
        return self.limit
