"""What a ramp records per stage: the data the pure analysis functions work on.

The runner fills these from the load generator (client side) and from the service's
``/metrics`` (server side); :mod:`loadtests.tipping`, :mod:`loadtests.capacity` and
:mod:`loadtests.thresholds` only read them. All rates are per second, all times in seconds.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class ServerSample:
    """The service's view of one stage, averaged over the stage's measured window."""

    in_flight: float
    """Mean HTTP requests in flight in the service."""
    pool_in_use: float
    """Mean connections checked out: rate(busy seconds), so it is exact, not a sampled gauge."""
    pool_size: int
    pool_waiters: float
    """Mean requests waiting for a pool connection."""
    acquire_wait_s: float
    """Mean wait for a pool connection."""
    external_in_flight: float
    """Mean calls to the external API under way."""
    cpu_utilisation: float
    """Service process CPU seconds per second (1.0 = one core)."""
    throughput_rps: float
    """Requests the service answered per second, any status."""

    @property
    def pool_utilisation(self) -> float:
        return self.pool_in_use / self.pool_size if self.pool_size else 0.0


@dataclass(frozen=True)
class StageSample:
    """One stage of a ramp, measured after its settle time."""

    index: int
    name: str
    target_rps: float
    """The rate the profile asked for."""
    window_s: float
    """Length of the measured window (the stage minus its settle time)."""
    offered_rps: float
    """Requests the generator started per second."""
    achieved_rps: float
    """Requests completed per second, any outcome (timeouts included)."""
    goodput_rps: float
    """Successful requests within the SLO per second."""
    dropped_rps: float = 0.0
    """Arrivals the generator could not send per second (k6's dropped_iterations)."""
    p50_s: float | None = None
    p95_s: float | None = None
    p99_s: float | None = None
    errors: dict[str, int] = field(default_factory=dict)
    """Failed requests by kind: ``timeout``, ``http_503``, ``connection``, ``check`` ..."""
    requests: int = 0
    """Requests completed in the window."""
    server: ServerSample | None = None
    box_speed_ms: tuple[float, ...] | None = None
    """The box's speed in the window: a fixed loop's median CPU ms on each CPU
    (:mod:`loadtests.box_speed`; lower is faster)."""

    @property
    def error_rate(self) -> float:
        return sum(self.errors.values()) / self.requests if self.requests else 0.0

    @property
    def goodput_ratio(self) -> float:
        """Goodput as a share of the offered load (1.0 = everything offered was served well)."""
        return self.goodput_rps / self.offered_rps if self.offered_rps > 0 else 1.0

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["error_rate"] = self.error_rate
        data["goodput_ratio"] = self.goodput_ratio
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> StageSample:
        fields = {k: v for k, v in data.items() if k not in ("error_rate", "goodput_ratio")}
        server = fields.pop("server", None)
        speed = fields.pop("box_speed_ms", None)
        return cls(
            **fields,
            server=ServerSample(**server) if server else None,
            box_speed_ms=None if speed is None else tuple(speed),
        )
