"""The capacity model: which limited resource saturates first, and at what rate.

Pure arithmetic over demands measured by the probe (:mod:`loadtests.probe`: at rest, then at a
moderate load); no clock, no I/O.

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

**The hold under load.** A hold measured at rest is too short at saturation: the service is one
event loop, and every ``await`` inside the transaction (BEGIN, each statement, COMMIT, the
pool's reset on release) resumes only when the loop gets round to it. The busier the loop, the
later. Seen with pool 8 and a 30 ms ``pg_sleep``: 32.8 ms at rest, 49.3 ms at the knee, and the
knee 35% below a model that used the hold at rest. So the hold is modelled as a function of the
loop's utilisation ``rho``::

    hold(rho) = hold_at_rest + growth x rho / (1 - rho)

``rho / (1 - rho)`` is how a single server's queueing delay grows with its utilisation (M/G/1:
the wait is ``rho / (1 - rho)`` times the mean residual work), and the loop is a single server
whose ready callbacks queue behind each other; ``growth`` lumps together the number of awaits
and the size of the callbacks ahead of each. It is not derived but *measured*: the probe runs
the mix once more at an open-model rate of 0.7 x the at-rest prediction and
:func:`fit_hold_growth` puts the curve through the at-rest and the loaded hold. Why 0.7: at low
``rho`` the curve is nearly a straight line, so the prediction is about ``hold_at_rest +
(loaded - at rest) x saturation / stage rate``, and the noise of one short measurement grows by
that ratio: about 2x from a stage at half the saturation (seen: +/-11% on the prediction), about
1.4x from 0.7. Closer still, a box busier than the probe thought would put the stage past the
real saturation. Whatever else
stretches the hold under load on this box (Postgres and the load generator sharing the cores,
row-lock waits on hot items) is in that measurement too, and is extrapolated along the same curve.
What no probe can know is a box that gets busier *after* it: then the knee falls short anyway,
and the ramp's own hold at the knee shows by how much.

The loop's utilisation at a throughput ``X`` is ``X x D_cpu / cpu_cores`` (the CPU resource's
own utilisation, ``cpu_cores`` = 1: one loop), so the pool's limit solves a fixed point:
``X = pool / hold(X x D_cpu)`` (:func:`loaded_pool_limit`). The left side rises with ``X`` and
the right side falls, so there is exactly one solution, below both ``pool / hold_at_rest`` and
the CPU's limit; bisection finds it. With ``growth = 0`` (no loaded stage) this is the plain
``pool / hold_at_rest``.

The stretch is applied only when the pool runs out before the CPU (``pool / hold_at_rest``
below the CPU's limit). When the CPU runs out first, the fixed point would sit where
``rho / (1 - rho)`` explodes (``rho`` near 1), the least trustworthy part of the curve, and
rename a CPU-bound service DB-bound.

**The CPU.** A request's CPU depends on the load: at rest each request wakes an idle process
(an order read 1.18-2.73 ms at rest against 0.76-2.42 ms under load over 38 probes), a light
mix's CPU per request keeps falling as the rate rises (more requests share each turn of the
loop), an order's rises when its connections are contended. A CPU-bound service tips with its
loop full, so the probe ends by *keeping it full* for a moment (a closed loop of requests,
:class:`loadtests.probe.FullLoop`): when the event loop was what held it back there (no pool
nine-tenths busy), the CPU per request measured full is the demand and the share of the core
the loop reached is the capacity (:attr:`Capacities.loop_share`). The loop reaches less than
a whole core by its CPU counter when it shares the machine: 0.68-0.84 on the 2-core box this was
written on, where the database and the load generator hold the other core. Otherwise (the
burst was held back by a pool) the CPU under load is the demand and :data:`LOOP_SHARE` the
capacity. This is still the least steady corner on a shared 2-core box: its two CPUs ran a
fixed loop up to twice as slowly as each other for seconds to minutes at a time
(:mod:`loadtests.box_speed`), and the knee of one configuration moved with whichever CPU the
service had (pool 16 / 5 ms: 594-941 req/s over eleven runs of one afternoon).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

ONSET_UTILISATION = 0.88
"""Bottleneck utilisation where latency was seen to start rising (FIELD-NOTES)."""
LOOP_SHARE = 0.72
"""The share of its core the service's event loop can use before it tips, by its CPU counter,
where the probe could not measure it (its full-loop burst was held back by a pool, or there was
no loaded stage).

Measured, not derived: on the 2-core box this was written on, the CPU-bound ramps (pool
16 / 5 ms and 20 / 20 ms, orders only, 18 runs) tipped with the service at 0.49-0.80 of a
core, median 0.72, never near 1. The CPU counter misses what the loop loses to the rest of the
box: waiting for a core the database and the load generator hold, and running slower when the
host's core under it is shared with neighbours. Set :attr:`Capacities.loop_share` (``brink ramp
--loop-share``) to override the measured share as well."""

_SHARE_TOLERANCE = 1e-6
_BISECTION_STEPS = 100


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
    db_hold_growth_s: float = 0.0
    """How the DB hold stretches with the event loop's utilisation ``rho``: the hold is
    ``db_hold_s + db_hold_growth_s x rho / (1 - rho)`` (:func:`fit_hold_growth`); 0: not
    measured, the hold at rest is used as is."""

    def __post_init__(self) -> None:
        if not 0.0 <= self.share <= 1.0:
            raise ValueError(f"route {self.route!r}: share must be in [0, 1], got {self.share}")
        for name in ("db_hold_s", "external_s", "cpu_s", "db_hold_growth_s"):
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
    loop_share: float = LOOP_SHARE
    """The share of each core the service can use before it tips: measured by the probe's
    full-loop burst where the loop held it back, else :data:`LOOP_SHARE`."""

    def __post_init__(self) -> None:
        if not 0.0 < self.loop_share <= 1.0:
            raise ValueError(f"loop_share must be in (0, 1], got {self.loop_share}")
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
    at_rest_demand: float | None = None
    """The demand measured at rest, when ``demand`` is that stretched to saturation (DB pool)."""
    loop_utilisation: float | None = None
    """The event loop's utilisation at ``max_rps``, which stretched ``at_rest_demand``."""

    def explain(self) -> str:
        """E.g. ``db_pool: 5 connections / 0.0206 s per request = 243 req/s``."""
        stretched = ""
        if self.at_rest_demand is not None and self.loop_utilisation is not None:
            stretched = (
                f" ({self.at_rest_demand:.4g} at rest + event-loop wait at"
                f" {self.loop_utilisation:.0%} loop use)"
            )
        return (
            f"{self.name}: {round(self.capacity, 2):g} {self.capacity_unit} / {self.demand:.4g} "
            f"{self.demand_unit} per request{stretched} = {self.max_rps:.0f} req/s"
        )


@dataclass(frozen=True)
class Prediction:
    """What the model predicts: every resource's limit and the bottleneck among them."""

    resources: tuple[ResourceLimit, ...]
    """In a fixed order: db_pool, external_pool, cpu, external_api (those with demand). The
    DB pool's demand is its hold at the loop utilisation it saturates at (module docstring)."""

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
    growth = weighted([d.db_hold_growth_s for d in demands])
    ext = weighted([d.external_s for d in demands])
    cpu = weighted([d.cpu_s for d in demands])
    calls = weighted([1.0 if d.external_s > 0 else 0.0 for d in demands])
    pool, ext_pool = float(capacities.pool_size), float(capacities.external_connections)
    cores = capacities.cpu_cores
    usable = cores * capacities.loop_share
    candidates = [
        ("external_pool", ext_pool, _plural(ext_pool, "connection"), ext, "s"),
        ("cpu", usable, f"of {cores:g} {_plural(cores, 'core')} usable", cpu, "CPU s"),
    ]
    if capacities.external_api_rps is not None:
        candidates.append(("external_api", capacities.external_api_rps, "calls/s", calls, "calls"))
    resources = [
        ResourceLimit(name, cap, cap_unit, demand, demand_unit, cap / demand)
        for name, cap, cap_unit, demand, demand_unit in candidates
        if demand > 0
    ]
    if db > 0:
        # Stretch the hold only where the pool runs out first at rest: see the module docstring.
        db_bound = cpu <= 0 or pool / db < usable / cpu
        resources.insert(0, _db_pool(pool, db, growth if db_bound else 0.0, cpu / cores))
    if not resources:
        raise ValueError("the mix puts no demand on any resource: nothing limits throughput")
    return Prediction(tuple(resources))


def _db_pool(pool: float, hold_s: float, growth_s: float, loop_s: float) -> ResourceLimit:
    unit = _plural(pool, "connection")
    if growth_s <= 0 or loop_s <= 0:
        return ResourceLimit("db_pool", pool, unit, hold_s, "s", pool / hold_s)
    rps = loaded_pool_limit(pool, hold_s, growth_s, loop_s)
    rho = rps * loop_s
    return ResourceLimit(
        "db_pool", pool, unit, pool / rps, "s", rps, at_rest_demand=hold_s, loop_utilisation=rho
    )


def loop_wait_factor(utilisation: float) -> float:
    """``rho / (1 - rho)``: how a single server's queueing delay grows with its utilisation."""
    if not 0.0 <= utilisation < 1.0:
        raise ValueError(f"loop utilisation must be in [0, 1), got {utilisation}")
    return utilisation / (1.0 - utilisation)


def loaded_hold(hold_s: float, growth_s: float, utilisation: float) -> float:
    """The DB hold when the event loop is ``utilisation`` busy (see the module docstring)."""
    return hold_s + growth_s * loop_wait_factor(utilisation)


def fit_hold_growth(hold_at_rest_s: float, loaded_hold_s: float, utilisation: float) -> float:
    """The ``growth`` that puts ``hold(rho)`` through a hold measured at loop utilisation ``rho``.

    A loaded hold shorter than the one at rest (noise) gives 0, not a negative growth: the hold
    never shrinks with load.
    """
    if not 0.0 < utilisation < 1.0:
        raise ValueError(f"the loaded stage's loop use must be in (0, 1), got {utilisation}")
    return max(0.0, loaded_hold_s - hold_at_rest_s) / loop_wait_factor(utilisation)


def loaded_pool_limit(pool: float, hold_s: float, growth_s: float, loop_s: float) -> float:
    """The throughput ``X`` where ``X x hold(X x loop_s) = pool``: the pool full at its loaded hold.

    ``loop_s`` is the event loop's seconds per request (CPU per request / cores). ``X x hold``
    rises from 0 to infinity as ``X`` goes from 0 to ``1 / loop_s`` (the loop full), so the
    root is unique and bisection over that interval (capped at ``pool / hold_s``) finds it.
    """
    if min(pool, hold_s, loop_s) <= 0 or growth_s < 0:
        raise ValueError("pool, hold and loop time must be > 0 and growth >= 0")
    low, high = 0.0, min(pool / hold_s, 1.0 / loop_s)
    for _ in range(_BISECTION_STEPS):
        middle = (low + high) / 2
        if middle * loop_s < 1.0 and middle * loaded_hold(hold_s, growth_s, middle * loop_s) < pool:
            low = middle
        else:
            high = middle
    return low


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
