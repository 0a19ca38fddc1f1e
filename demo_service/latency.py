"""The slow API's latency model: lognormal jitter, a slowdown past capacity, injected errors.

Pure and seedable: every draw comes from the :class:`random.Random` the caller passes in.
Below ``capacity`` requests in flight a call takes ``base_s`` times a lognormal factor with
median 1; past it every call slows by ``in_flight / capacity``, so throughput levels off near
``capacity / mean service time`` and latency then grows with the queue (Little's law).
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Literal, get_args

from demo_service.settings import SlowApiSettings

Outage = Literal["none", "hang", "error"]
OUTAGES: tuple[str, ...] = get_args(Outage)


@dataclass(frozen=True)
class LatencyModel:
    """How long one call takes and whether it fails."""

    base_s: float
    jitter_sigma: float
    capacity: int
    error_rate: float
    extra_s: float = 0.0
    """Added to every call before the slowdown: a dependency that got slower."""
    outage: Outage = "none"

    def __post_init__(self) -> None:
        if not (math.isfinite(self.base_s) and self.base_s >= 0):
            raise ValueError(f"base_s must be a finite number >= 0, got {self.base_s!r}")
        if not (math.isfinite(self.jitter_sigma) and self.jitter_sigma >= 0):
            raise ValueError(
                f"jitter_sigma must be a finite number >= 0, got {self.jitter_sigma!r}"
            )
        if self.capacity < 1:
            raise ValueError(f"capacity must be >= 1, got {self.capacity!r}")
        if not 0 <= self.error_rate <= 1:
            raise ValueError(f"error_rate must be within [0, 1], got {self.error_rate!r}")
        if not (math.isfinite(self.extra_s) and self.extra_s >= 0):
            raise ValueError(f"extra_s must be a finite number >= 0, got {self.extra_s!r}")
        if self.outage not in OUTAGES:
            raise ValueError(f"outage must be one of {OUTAGES}, got {self.outage!r}")

    @classmethod
    def from_settings(cls, settings: SlowApiSettings) -> LatencyModel:
        """The model the slow API starts with."""
        return cls(
            base_s=settings.base_latency_s,
            jitter_sigma=settings.jitter_sigma,
            capacity=settings.capacity,
            error_rate=settings.error_rate,
            extra_s=settings.extra_latency_s,
            outage=settings.outage,
        )

    def slowdown(self, in_flight: int) -> float:
        """Factor on every call's time with ``in_flight`` calls under way: 1 up to capacity."""
        return max(1.0, in_flight / self.capacity)

    def delay(self, rng: random.Random, in_flight: int) -> float:
        """Seconds one call takes while ``in_flight`` calls (itself included) are under way."""
        jitter = rng.lognormvariate(0.0, self.jitter_sigma) if self.jitter_sigma > 0 else 1.0
        return (self.base_s * jitter + self.extra_s) * self.slowdown(in_flight)

    def fails(self, rng: random.Random) -> bool:
        """Whether this call fails: true with probability ``error_rate``."""
        return rng.random() < self.error_rate
