"""Pure verdicts of the resilience scenarios: recovered or stuck, retry amplification, bottleneck.

Every function reads what a phase recorded — the client's per-second series
(:mod:`loadtests.series`) and the service's (or the Postgres exporter's) scrapes
(:mod:`loadtests.scrape`) — and turns it into named figures and a :class:`Verdict`. No clock, no
I/O: the scenarios gather, these decide, and the unit tests feed them synthetic data.

Windows are wall-clock seconds (epoch), as both the series and the scrapes are keyed.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from loadtests.scenarios.base import Verdict
from loadtests.scrape import Scrape, server_window
from loadtests.series import Second, WindowStats, window

ITEM_ROUTE = "/items/{item_id}"
QUOTE_ROUTE = "/items/{item_id}/shipping-quote"
ORDER_ROUTE = "/orders"
EXTERNAL = "external"

_EMPTY = Second()
Span = tuple[float, float]
"""``(start, end)`` in wall-clock seconds."""


# When things happened ------------------------------------------------------------------------


def load_span(timeline: Sequence[Mapping[str, Any]], ended_at: float) -> Span | None:
    """From the first stage's start to the drain's (the generator's timeline), else ``ended_at``."""
    stages = [entry for entry in timeline if entry.get("name") != "drain"]
    if not stages:
        return None
    drain = next((entry for entry in timeline if entry.get("name") == "drain"), None)
    return float(stages[0]["start"]), float(drain["start"]) if drain else ended_at


def fault_span(applied: Sequence[Any], ended_at: float) -> Span | None:
    """When the first fault that applied was in force: its apply to its undo (or ``ended_at``).

    ``applied`` are the fault runner's records (``wall_time``, ``kind``, ``action``, ``ok``).
    """
    applies = [a for a in applied if a.kind == "apply" and a.ok]
    if not applies:
        return None
    first = applies[0]
    undo = next(
        (a for a in applied if a.kind == "undo" and a.action == first.action
         and a.wall_time >= first.wall_time),
        None,
    )  # fmt: skip
    return float(first.wall_time), float(undo.wall_time) if undo is not None else ended_at


# Recovery ------------------------------------------------------------------------------------


def _healthy_goodput(stats: WindowStats, floor: float) -> bool:
    return stats.offered_rps > 0 and stats.goodput_rps / stats.offered_rps >= floor


def recovery_verdict(
    seconds: Mapping[int, Second],
    trigger_end_s: float,
    baseline: Span,
    end_s: float,
    *,
    window_s: int = 30,
    factor: float = 1.1,
    goodput_floor: float = 0.9,
    chunk_s: int = 5,
    within_s: float | None = None,
    baseline_floor: float = 0.9,
) -> Verdict:
    """Recovered or stuck after a trigger ended at ``trigger_end_s``, load unchanged.

    Recovered from second ``t`` when the ``window_s`` seconds from ``t`` hold: their p50 (from
    the merged latency histograms, not an average of per-second p50s) is within ``factor`` of the
    baseline window's p50, and *every* ``chunk_s`` slice of them has a goodput ratio of at least
    ``goodput_floor`` times the baseline's. The per-slice goodput is what makes it sustained: a
    window that straddles the end of a stuck spell can have a fine p50 overall (fast 503s and
    recovered seconds outweigh the slow ones) but not a fine goodput in every slice. The time to
    recover is ``t - trigger_end_s`` for the first such ``t``; only seconds before ``end_s`` (the
    end of the load, before the drain) count, and a second in which nothing arrived (the
    generator stalled) breaks a window. ``within_s``: a later recovery is "recovered late".
    A baseline with a goodput ratio under ``baseline_floor`` gets no verdict: already overloaded.
    """
    baseline_stats = window(seconds, math.ceil(baseline[0]), math.floor(baseline[1]))
    figures: dict[str, float] = {"trigger_end_s": trigger_end_s}
    if baseline_stats.p50_s is None or baseline_stats.offered_rps <= 0:
        return Verdict(False, "no data", "No baseline: no request finished before the trigger.",
                       figures)  # fmt: skip
    baseline_ratio = baseline_stats.goodput_rps / baseline_stats.offered_rps
    p50_limit = factor * baseline_stats.p50_s
    floor = goodput_floor * baseline_ratio
    figures |= {
        "baseline_p50_s": baseline_stats.p50_s,
        "baseline_goodput_ratio": baseline_ratio,
        "p50_limit_s": p50_limit,
    }
    if baseline_ratio < baseline_floor:
        return Verdict(
            False,
            "overloaded before the trigger",
            f"No verdict: before the trigger only {baseline_ratio:.0%} of the offered load was"
            f" served within the SLO (p50 {baseline_stats.p50_s * 1000:.0f} ms): the load is"
            " past capacity already, so there is nothing to recover to.",
            figures,
        )
    first, last = math.ceil(trigger_end_s), math.floor(end_s)
    figures["observed_after_s"] = float(max(0, last - first))
    if last - first < window_s:
        return Verdict(
            False,
            "no data",
            f"Only {max(0, last - first)} s of load after the trigger; a verdict needs"
            f" {window_s} s.",
            figures,
        )
    if window(seconds, first, last).offered_rps == 0:
        return Verdict(False, "no data", "No request arrived after the trigger ended.", figures)
    after = window(seconds, last - window_s, last)
    if after.p50_s is not None:  # none when nothing finished at all
        figures["final_p50_s"] = after.p50_s
    figures["final_goodput_ratio"] = (
        after.goodput_rps / after.offered_rps if after.offered_rps else 0.0
    )
    for start in range(first, last - window_s + 1):
        if _recovered_from(seconds, start, window_s, chunk_s, p50_limit, floor):
            took = max(0.0, start - trigger_end_s)
            figures["time_to_recover_s"] = took
            late = within_s is not None and took > within_s
            return Verdict(
                not late,
                "recovered late" if late else "recovered",
                f"Recovered {took:.0f} s after the trigger ended: p50 within {factor:g}x of the"
                f" baseline's {baseline_stats.p50_s * 1000:.1f} ms and goodput at least"
                f" {floor:.0%} of offered for {window_s} s"
                + (f" (later than {within_s:g} s)." if late else "."),
                figures,
            )
    p50_text = "none finished" if after.p50_s is None else f"{after.p50_s * 1000:.0f} ms"
    return Verdict(
        False,
        "stuck",
        f"Stuck: {last - first} s after the trigger ended the last {window_s} s still had p50"
        f" {p50_text} (baseline {baseline_stats.p50_s * 1000:.1f} ms) and goodput"
        f" {figures['final_goodput_ratio']:.0%} of offered (baseline {baseline_ratio:.0%}).",
        figures,
    )


def _recovered_from(
    seconds: Mapping[int, Second],
    start: int,
    window_s: int,
    chunk_s: int,
    p50_limit: float,
    floor: float,
) -> bool:
    if any(seconds.get(s, _EMPTY).arrivals == 0 for s in range(start, start + window_s)):
        return False  # a second without load shows nothing, least of all a recovery
    whole = window(seconds, start, start + window_s)
    if whole.p50_s is None or whole.p50_s > p50_limit or not _healthy_goodput(whole, floor):
        return False
    return all(
        _healthy_goodput(window(seconds, s, min(s + chunk_s, start + window_s)), floor)
        for s in range(start, start + window_s, chunk_s)
    )


def repeat_summary(verdicts: Sequence[Verdict], label: str) -> tuple[int, float | None]:
    """How many ``verdicts`` carry ``label``, and the median time to recover of the recovered."""
    times = [v.figures["time_to_recover_s"] for v in verdicts if "time_to_recover_s" in v.figures]
    return sum(1 for v in verdicts if v.label == label), statistics.median(times) if times else None


# Scrape arithmetic ----------------------------------------------------------------------------


def _edges(scrapes: Sequence[Scrape], span: Span) -> tuple[Scrape, Scrape] | None:
    """The scrapes nearest the span's two ends, if they are at least half a second apart."""
    if not scrapes:
        return None
    first = min(scrapes, key=lambda s: abs(s.at - span[0]))
    last = min(scrapes, key=lambda s: abs(s.at - span[1]))
    return (first, last) if last.at - first.at >= 0.5 else None


def _delta(first: Scrape, last: Scrape, metric: str, /, **labels: str) -> float:
    """Increase of the samples called ``metric`` whose labels include ``labels``."""

    def total(scrape: Scrape) -> float:
        return sum(
            value
            for (sample, keyed), value in scrape.values.items()
            if sample == metric and labels.items() <= dict(keyed).items()
        )

    return max(0.0, total(last) - total(first))


def _gauge_mean(scrapes: Iterable[Scrape], span: Span, name: str) -> float | None:
    values = [s.total(name) for s in scrapes if span[0] <= s.at <= span[1]]
    return sum(values) / len(values) if values else None


def route_quantile(
    scrapes: Sequence[Scrape], span: Span, route: str, q: float, method: str = "GET"
) -> float | None:
    """The service-side ``q`` quantile of ``route`` over ``span``, from its histogram buckets.

    Interpolated inside the bucket as Prometheus' ``histogram_quantile`` does.
    """
    edges = _edges(scrapes, span)
    if edges is None:
        return None
    first, last = edges
    name = "brink_http_request_duration_seconds_bucket"
    uppers = sorted(
        {
            (float(dict(labels)["le"]), dict(labels)["le"])
            for (sample, labels) in last.values
            if sample == name and dict(labels).get("route") == route
        }
    )
    cumulative = [
        (upper, _delta(first, last, name, route=route, method=method, le=text))
        for upper, text in uppers
    ]
    if not cumulative or cumulative[-1][1] <= 0:
        return None
    rank = q * cumulative[-1][1]
    lower, below = 0.0, 0.0
    for upper, count in cumulative:
        if count >= rank:
            if math.isinf(upper):
                return lower
            inside = count - below
            return lower + (upper - lower) * ((rank - below) / inside if inside else 1.0)
        lower, below = upper, count
    return lower


# Retry amplification and spill-over ----------------------------------------------------------


@dataclass(frozen=True)
class Amplification:
    """How many requests reached the dependency for each request a client sent."""

    client_requests: float
    """Requests the service answered on the route that calls the dependency (any status)."""
    calls: float
    """Calls the service's code made to the dependency (once per call, before retries)."""
    attempts: float
    """Attempts sent: first tries and retries."""
    reached: float
    """Attempts that got a connection and went out (all but local pool timeouts)."""
    refused: float
    """Calls the breaker or the bulkhead turned away without trying."""

    @property
    def wanted(self) -> float:
        """Client requests that got as far as calling the dependency: calls plus refusals."""
        return self.calls + self.refused

    @property
    def ratio(self) -> float:
        """Requests reaching the dependency / client requests that needed it (amplification)."""
        return self.reached / self.wanted if self.wanted else math.nan

    @property
    def retries_per_call(self) -> float:
        return (self.attempts - self.calls) / self.calls if self.calls else 0.0

    def figures(self, prefix: str = "") -> dict[str, float]:
        return {
            f"{prefix}amplification": self.ratio,
            f"{prefix}client_requests": self.client_requests,
            f"{prefix}dependency_wanted": self.wanted,
            f"{prefix}dependency_calls": self.calls,
            f"{prefix}dependency_attempts": self.attempts,
            f"{prefix}dependency_reached": self.reached,
            f"{prefix}dependency_refused": self.refused,
            f"{prefix}retries_per_call": self.retries_per_call,
        }


def amplification(
    scrapes: Sequence[Scrape], span: Span, route: str = QUOTE_ROUTE, target: str = EXTERNAL
) -> Amplification | None:
    """The retry amplification over ``span`` from the service's counters.

    Denominator: the client requests that needed the dependency — the calls the code made
    (counted once per call, before any retry) plus those the breaker or the bulkhead refused
    without trying. Both are counted when the call *starts*, like the attempts, so a queue
    building up during the window does not skew the ratio (requests *answered* on ``route``
    lag behind when they queue; they are kept as ``client_requests`` for the report).
    Numerator: the external client's attempts by outcome, minus those that never left the
    process (``pool_timeout``): what reached the dependency.
    """
    edges = _edges(scrapes, span)
    if edges is None:
        return None
    first, last = edges
    sent = _delta(first, last, "brink_external_requests_total")
    stayed = _delta(first, last, "brink_external_requests_total", outcome="pool_timeout")
    return Amplification(
        client_requests=_delta(first, last, "brink_http_requests_total", route=route),
        calls=_delta(first, last, "brink_dependency_calls_total", target=target),
        attempts=_delta(first, last, "brink_dependency_attempts_total", target=target),
        reached=sent - stayed,
        refused=_delta(first, last, "brink_breaker_rejected_total", target=target)
        + _delta(first, last, "brink_bulkhead_rejected_total", name=target),
    )


@dataclass(frozen=True)
class SpillOver:
    """What a storm on one route did to another (the DB reads): service-side p95 and errors."""

    route: str
    p95_before_s: float | None
    p95_during_s: float | None
    error_share_before: float
    error_share_during: float

    @property
    def p95_ratio(self) -> float:
        if not self.p95_before_s or self.p95_during_s is None:
            return math.nan
        return self.p95_during_s / self.p95_before_s

    def figures(self, prefix: str = "") -> dict[str, float]:
        def nan_if_none(value: float | None) -> float:
            return math.nan if value is None else value

        return {
            f"{prefix}reads_p95_before_s": nan_if_none(self.p95_before_s),
            f"{prefix}reads_p95_during_s": nan_if_none(self.p95_during_s),
            f"{prefix}reads_p95_ratio": self.p95_ratio,
            f"{prefix}reads_error_share_before": self.error_share_before,
            f"{prefix}reads_error_share_during": self.error_share_during,
        }


def _error_share(scrapes: Sequence[Scrape], span: Span, route: str) -> float:
    edges = _edges(scrapes, span)
    if edges is None:
        return math.nan
    first, last = edges
    answered = _delta(first, last, "brink_http_requests_total", route=route)
    failed = sum(
        _delta(first, last, "brink_http_requests_total", route=route, status=str(code))
        for code in (500, 502, 503, 504)
    )
    return failed / answered if answered else math.nan


def spill_over(
    scrapes: Sequence[Scrape], before: Span, during: Span, route: str = ITEM_ROUTE
) -> SpillOver:
    """``route``'s p95 and 5xx share before and during the storm (service-side figures)."""
    return SpillOver(
        route,
        route_quantile(scrapes, before, route, 0.95),
        route_quantile(scrapes, during, route, 0.95),
        _error_share(scrapes, before, route),
        _error_share(scrapes, during, route),
    )


# The saturated resource -----------------------------------------------------------------------

BLOCKED_MIN = 1.0
"""Mean backends waiting on a lock above which lock waits are a resource of their own."""
BLOCKED_SHARE = 0.25
"""...and the share of the busy pool connections they must hold to be *the* bottleneck."""
SATURATED = 0.85
"""Utilisation from which a pool, a core or a client pool counts as saturated."""


@dataclass(frozen=True)
class Bottleneck:
    """The resource that limits the service over a window, with the figures that say so."""

    resource: str
    """``row-lock wait``, ``db pool``, ``cpu``, ``external api`` or ``none``."""
    explanation: str
    evidence: dict[str, float]


def name_bottleneck(
    scrapes: Sequence[Scrape], span: Span, pg_scrapes: Sequence[Scrape] = ()
) -> Bottleneck | None:
    """Which resource is saturated over ``span``, root cause first.

    A row-lock queue *looks* like a full pool: each order waiting for the hot row holds a pool
    connection while it waits, so the pool is busy and has waiters while the CPU idles. Lock
    waits are therefore checked first: when Postgres reports backends blocked by another
    backend (``brink_pg_blocked_backends``, from the Postgres exporter's ``pg_blocking_pids``)
    on average, and they are a good share of the busy connections, the pool is full *because*
    of the lock, and the lock is named. Then the pool, the CPU (one worker: 1.0 = one core),
    and the external API's client pool. The mean number of lock waiters is the lock-wait
    seconds per second (Little's law), sampled once per exporter scrape.
    """
    server = server_window(scrapes, span[0], span[1])
    if server is None:
        return None
    edges = _edges(scrapes, span)
    assert edges is not None  # server_window found the same two scrapes
    external_max = edges[1].total("brink_external_connections_max")
    evidence = {
        "cpu_utilisation": server.cpu_utilisation,
        "pool_in_use": server.pool_in_use,
        "pool_size": float(server.pool_size),
        "pool_utilisation": server.pool_utilisation,
        "pool_waiters": server.pool_waiters,
        "acquire_wait_s": server.acquire_wait_s,
        "external_in_flight": server.external_in_flight,
        "external_utilisation": server.external_in_flight / external_max if external_max else 0.0,
        "throughput_rps": server.throughput_rps,
    }
    waits = _gauge_mean(pg_scrapes, span, "brink_pg_lock_waits")
    blocked = _gauge_mean(pg_scrapes, span, "brink_pg_blocked_backends")
    if waits is not None and blocked is not None:
        evidence |= {"lock_wait_s_per_s": waits, "blocked_backends": blocked}
    cpu = f"CPU {server.cpu_utilisation:.0%} of a core"
    pool = (
        f"pool {server.pool_in_use:.1f}/{server.pool_size} busy with"
        f" {server.pool_waiters:.1f} waiting"
    )
    if (
        blocked is not None
        and waits is not None
        and blocked >= BLOCKED_MIN
        and (blocked >= BLOCKED_SHARE * server.pool_in_use)
    ):
        return Bottleneck(
            "row-lock wait",
            f"Row-lock wait: {blocked:.1f} backends blocked by another on average"
            f" ({waits:.1f} s of lock wait per second) hold the {pool}, while {cpu}.",
            evidence,
        )
    if server.pool_utilisation >= SATURATED and server.pool_waiters >= 1.0:
        return Bottleneck("db pool", f"DB pool: {pool}; {cpu}.", evidence)
    if server.cpu_utilisation >= SATURATED:
        return Bottleneck("cpu", f"CPU: {cpu}; {pool}.", evidence)
    if evidence["external_utilisation"] >= SATURATED:
        return Bottleneck(
            "external api",
            f"External API: {server.external_in_flight:.1f} of {external_max:.0f} client"
            f" connections in use on average; {cpu}.",
            evidence,
        )
    return Bottleneck("none", f"Nothing saturated: {cpu}, {pool}.", evidence)
