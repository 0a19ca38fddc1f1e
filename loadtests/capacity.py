"""The capacity model: which limited resource saturates first, and at what rate.

Pure arithmetic over demands measured in a low-load probe; no clock, no I/O.

In plain words:

- **Demand per request** on a resource, ``D_r``: how much of it one request of the mix uses,
  averaged over the mix: ``D_r = sum(share x demand of each route)``. For the DB pool it is the
  seconds a connection is held, for the external pool the seconds an external connection is
  held, for the CPU the CPU seconds, for the external API the calls made (one per route that
  calls it).
- **Little's law** per resource: busy units = throughput x demand. A resource with ``capacity_r``
  units (connections, cores; or calls per second for the external API) is full when
  ``X x D_r = capacity_r``, so it can carry at most ``X_r = capacity_r / D_r`` requests/s.
  Resources the mix never uses (``D_r = 0``) are skipped.
- **Bottleneck law**: the system saturates at ``X = min(X_r)``; the resource reaching it is the
  bottleneck. Utilisation at a rate ``lambda`` is ``U_r = lambda x D_r / capacity_r``.

Use *measured* hold times: ``SELECT pg_sleep(0.02)`` holds a connection 20.6 ms, so a pool of 4
saturates at 193 req/s, not 200 (FIELD-NOTES). Latency starts to rise near 88% utilisation of the
bottleneck (:data:`ONSET_UTILISATION`); past ``X`` throughput is flat and latency grows as
in-flight / capacity. A measured knee (SLO-bound) therefore sits slightly below ``X``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

ONSET_UTILISATION = 0.88
"""Bottleneck utilisation where latency was seen to start rising (FIELD-NOTES)."""

_SHARE_TOLERANCE = 1e-6


@dataclass(frozen=True)
class RouteDemand:
    """One route's share of the mix and its per-request demand on each resource."""

    route: str
    share: float
    """Fraction of the requests in the mix; the shares of a mix sum to 1."""
    db_hold_s: float
    """Seconds a DB connection is held per request (measured, not the query's nominal time)."""
    external_s: float
    """Seconds an external-API connection is held per request (0 if the route never calls it)."""
    cpu_s: float
    """Service CPU seconds per request."""

    def __post_init__(self) -> None:
        if not 0.0 <= self.share <= 1.0:
            raise ValueError(f"route {self.route!r}: share must be in [0, 1], got {self.share}")
        for name in ("db_hold_s", "external_s", "cpu_s"):
            value = getattr(self, name)
            if not (value >= 0.0 and math.isfinite(value)):
                raise ValueError(f"route {self.route!r}: {name} must be >= 0, got {value}")


@dataclass(frozen=True)
class Capacities:
    """The configured limits of the service."""

    pool_size: int
    external_connections: int
    cpu_cores: float = 1.0
    external_api_rps: float | None = None
    """The slow API's own capacity in calls/s (its concurrency / base latency); None to skip."""

    def __post_init__(self) -> None:
        limits = {
            "pool_size": self.pool_size,
            "external_connections": self.external_connections,
            "cpu_cores": self.cpu_cores,
        }
        if self.external_api_rps is not None:
            limits["external_api_rps"] = self.external_api_rps
        for name, value in limits.items():
            if not value > 0:
                raise ValueError(f"{name} must be > 0, got {value}")


@dataclass(frozen=True)
class ResourceLimit:
    """One resource: its capacity, the mix's demand on it, and the throughput it allows."""

    name: str
    capacity: float
    capacity_unit: str
    demand: float
    demand_unit: str
    max_rps: float

    def explain(self) -> str:
        """E.g. ``db_pool: 5 connections / 0.0206 s per request = 243 req/s``."""
        return (
            f"{self.name}: {self.capacity:g} {self.capacity_unit} / {self.demand:.4g} "
            f"{self.demand_unit} per request = {self.max_rps:.0f} req/s"
        )


@dataclass(frozen=True)
class Prediction:
    """What the model predicts: every resource's limit and the bottleneck among them."""

    resources: tuple[ResourceLimit, ...]
    """In a fixed order: db_pool, external_pool, cpu, external_api (those with demand)."""

    @property
    def limiting(self) -> ResourceLimit:
        return min(self.resources, key=lambda r: r.max_rps)

    @property
    def saturation_rps(self) -> float:
        """The throughput at which the bottleneck is fully used: ``min(capacity_r / D_r)``."""
        return self.limiting.max_rps

    @property
    def bottleneck(self) -> str:
        return self.limiting.name

    def utilisation_at(self, rps: float) -> dict[str, float]:
        """Each resource's utilisation at ``rps`` requests/s: ``rps x D_r / capacity_r``."""
        return {r.name: rps * r.demand / r.capacity for r in self.resources}

    def rate_at_utilisation(self, utilisation: float = ONSET_UTILISATION) -> float:
        """The rate at which the bottleneck reaches ``utilisation`` (latency onset by default)."""
        return utilisation * self.saturation_rps

    @property
    def explanation(self) -> str:
        """The bottleneck's formula, then the other resources from the tightest up."""
        rest = sorted(
            (r for r in self.resources if r is not self.limiting), key=lambda r: r.max_rps
        )
        tail = f" (next: {'; '.join(r.explain() for r in rest)})" if rest else ""
        return f"bottleneck {self.limiting.explain()}{tail}"


def _validate_mix(demands: Sequence[RouteDemand]) -> None:
    if not demands:
        raise ValueError("no route demands: the mix is empty")
    routes = [d.route for d in demands]
    duplicates = sorted({r for r in routes if routes.count(r) > 1})
    if duplicates:
        raise ValueError(f"routes listed more than once: {', '.join(duplicates)}")
    total = math.fsum(d.share for d in demands)
    if abs(total - 1.0) > _SHARE_TOLERANCE:
        raise ValueError(f"route shares must sum to 1, got {total:.6g}")


def _plural(count: float, word: str) -> str:
    return word if count == 1 else word + "s"


def predict(demands: Sequence[RouteDemand], capacities: Capacities) -> Prediction:
    """Apply Little's law per resource and the bottleneck law to a measured mix."""
    _validate_mix(demands)

    def weighted(per_route: list[float]) -> float:
        return math.fsum(d.share * v for d, v in zip(demands, per_route, strict=True))

    db = weighted([d.db_hold_s for d in demands])
    ext = weighted([d.external_s for d in demands])
    cpu = weighted([d.cpu_s for d in demands])
    calls = weighted([1.0 if d.external_s > 0 else 0.0 for d in demands])
    pool, ext_pool = float(capacities.pool_size), float(capacities.external_connections)
    candidates = [
        ("db_pool", pool, _plural(pool, "connection"), db, "s"),
        ("external_pool", ext_pool, _plural(ext_pool, "connection"), ext, "s"),
        ("cpu", capacities.cpu_cores, _plural(capacities.cpu_cores, "core"), cpu, "CPU s"),
    ]
    if capacities.external_api_rps is not None:
        candidates.append(("external_api", capacities.external_api_rps, "calls/s", calls, "calls"))
    resources = tuple(
        ResourceLimit(name, cap, cap_unit, demand, demand_unit, cap / demand)
        for name, cap, cap_unit, demand, demand_unit in candidates
        if demand > 0
    )
    if not resources:
        raise ValueError("the mix puts no demand on any resource: nothing limits throughput")
    return Prediction(resources)


@dataclass(frozen=True)
class KneeCheck:
    """The predicted saturation throughput against the knee a run measured."""

    predicted: float
    measured: float

    @property
    def error_ratio(self) -> float:
        """``(measured - predicted) / predicted``: negative when the run fell short."""
        return (self.measured - self.predicted) / self.predicted

    def within(self, tolerance: float = 0.15) -> bool:
        """True when the measured knee is within ``tolerance`` (relative) of the prediction."""
        return abs(self.error_ratio) <= tolerance


def compare_knee(prediction: Prediction, measured_knee_rps: float) -> KneeCheck:
    """How far the measured knee landed from the model's saturation throughput."""
    return KneeCheck(predicted=prediction.saturation_rps, measured=measured_knee_rps)
