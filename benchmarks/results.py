"""What each measured window produced, and the medians over rounds (pure, no I/O)."""

from __future__ import annotations

import statistics
from collections.abc import Iterable
from dataclasses import dataclass, field

from benchmarks.cpu import CpuUsage
from benchmarks.wrk_runner import WrkResult

METRICS_GOAL = 0.95
"""Goal for max req/s with the HTTP metrics middleware on, relative to off."""


@dataclass(frozen=True)
class Window:
    """One measured wrk window: 2xx throughput, failures, latency and who used the CPU."""

    ok_per_s: float
    ok: int
    failed: int
    failed_fraction: float
    non2xx: dict[str, int]
    socket_errors: dict[str, int]
    latency_ms: dict[str, float]
    service_cores: float
    wrk_cores: float
    postgres_cores: float
    box_cores: float
    valid: bool

    @classmethod
    def of(cls, result: WrkResult, usage: CpuUsage, max_failed: float) -> Window:
        """A window from wrk's result and the CPU use measured around it."""
        return cls(
            ok_per_s=result.ok_per_s,
            ok=result.ok,
            failed=result.failed,
            failed_fraction=result.failed_fraction,
            non2xx=result.non2xx,
            socket_errors=result.socket_errors,
            latency_ms=result.latency_ms,
            service_cores=usage.process_cores,
            wrk_cores=result.wrk_cpu_s / result.duration_s if result.duration_s else 0.0,
            postgres_cores=usage.tree_cores,
            box_cores=usage.box_cores,
            valid=result.ok > 0 and result.failed_fraction <= max_failed,
        )

    @property
    def other_cores(self) -> float:
        """Busy cores not explained by the service, wrk or Postgres: other load on the box."""
        return self.box_cores - self.service_cores - self.wrk_cores - self.postgres_cores

    @property
    def service_cpu_us_per_ok(self) -> float:
        """Service CPU per 2xx response, in microseconds."""
        return self.service_cores / self.ok_per_s * 1e6 if self.ok_per_s else 0.0


@dataclass(frozen=True)
class ItemsRun:
    """``GET /items/{id}`` in one fresh service process, metrics middleware on or off."""

    round: int
    metrics: bool
    window: Window


@dataclass(frozen=True)
class OrdersRun:
    """``POST /orders`` with one pool size: the probe's hold, and saturation under load."""

    round: int
    pool: int
    connections: int
    hold_s: float
    hold_under_load_s: float
    pool_utilisation: float
    window: Window

    @property
    def predicted_per_s(self) -> float:
        return self.pool / self.hold_s

    @property
    def measured_over_predicted(self) -> float:
        return self.window.ok_per_s / self.predicted_per_s


def median(values: Iterable[float]) -> float | None:
    """The median, or ``None`` when there is nothing to take it of."""
    listed = list(values)
    return statistics.median(listed) if listed else None


def ratio(top: float | None, bottom: float | None) -> float | None:
    return None if top is None or not bottom else top / bottom


@dataclass(frozen=True)
class ItemsSummary:
    """Medians over valid rounds of metrics on and off, and their ratio."""

    on_per_s: float | None
    off_per_s: float | None
    on_over_off: float | None
    on_cpu_us: float | None
    off_cpu_us: float | None
    cpu_off_over_on: float | None
    """Service CPU per request, off / on: what on/off would be if CPU alone set the rate."""
    round_ratios: dict[int, float | None] = field(default_factory=dict)
    """on / off within each round: neighbours in time, so slow drifts in other load cancel."""
    goal: float = METRICS_GOAL
    meets_goal: bool | None = field(default=None)

    @classmethod
    def of(cls, runs: list[ItemsRun]) -> ItemsSummary:
        def valid(metrics: bool) -> list[Window]:
            return [r.window for r in runs if r.metrics is metrics and r.window.valid]

        on_per_s = median(w.ok_per_s for w in valid(True))
        off_per_s = median(w.ok_per_s for w in valid(False))
        on_over_off = ratio(on_per_s, off_per_s)
        on_cpu_us = median(w.service_cpu_us_per_ok for w in valid(True))
        off_cpu_us = median(w.service_cpu_us_per_ok for w in valid(False))
        return cls(
            on_per_s=on_per_s,
            off_per_s=off_per_s,
            on_over_off=on_over_off,
            on_cpu_us=on_cpu_us,
            off_cpu_us=off_cpu_us,
            cpu_off_over_on=ratio(off_cpu_us, on_cpu_us),
            round_ratios=_round_ratios(runs),
            meets_goal=None if on_over_off is None else on_over_off >= METRICS_GOAL,
        )


def _round_ratios(runs: list[ItemsRun]) -> dict[int, float | None]:
    by_round: dict[int, dict[bool, float | None]] = {}
    for run in runs:
        value = run.window.ok_per_s if run.window.valid else None
        by_round.setdefault(run.round, {})[run.metrics] = value
    return {n: ratio(pair.get(True), pair.get(False)) for n, pair in sorted(by_round.items())}


@dataclass(frozen=True)
class OrdersSummary:
    """Medians over the valid rounds of one pool size."""

    pool: int
    hold_ms: float | None
    predicted_per_s: float | None
    measured_per_s: float | None
    measured_over_predicted: float | None
    hold_under_load_ms: float | None
    pool_utilisation: float | None

    @classmethod
    def of(cls, pool: int, runs: list[OrdersRun]) -> OrdersSummary:
        valid = [r for r in runs if r.pool == pool and r.window.valid]
        return cls(
            pool=pool,
            hold_ms=median(r.hold_s * 1000 for r in valid),
            predicted_per_s=median(r.predicted_per_s for r in valid),
            measured_per_s=median(r.window.ok_per_s for r in valid),
            measured_over_predicted=median(r.measured_over_predicted for r in valid),
            hold_under_load_ms=median(r.hold_under_load_s * 1000 for r in valid),
            pool_utilisation=median(r.pool_utilisation for r in valid),
        )
