"""Every Prometheus metric brink's two apps export, declared in one place.

Each app builds its metrics into its own :class:`~prometheus_client.CollectorRegistry` when the app
is created (never at import time), so tests get a fresh registry per app. Names carry base units
(``_seconds``, ``_total``); labels are bounded: route templates, methods, status codes, outcomes.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    PlatformCollector,
    ProcessCollector,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.gc_collector import GCCollector
from prometheus_client.registry import Collector

# From a few ms to a minute: covers the fast path, the slow API's long tail and timeouts.
LATENCY_BUCKETS = (
    0.001, 0.0025, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.03, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3,
    0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 7.5, 10.0, 15.0, 20.0, 30.0, 60.0,
)  # fmt: skip
# Waiting for a pool connection or an event-loop tick: finer at the low end.
WAIT_BUCKETS = (
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
    2.5, 5.0, 10.0, 30.0,
)  # fmt: skip


class _PreciseCpuCollector(Collector):
    """The process's CPU time from the kernel's nanosecond clock, read when scraped.

    ``process_cpu_seconds_total`` (ProcessCollector) reads ``/proc/self/stat``, which counts in
    10 ms ticks: over a one-second probe of a 1 ms-per-request route that is +/-10% noise on the
    CPU per request. ``time.process_time()`` (``CLOCK_PROCESS_CPUTIME_ID``) is exact.
    """

    def collect(self) -> Iterator[Metric]:
        yield CounterMetricFamily(
            "brink_process_cpu_seconds",
            "CPU seconds this process used (user + system, all threads), nanosecond clock.",
            value=time.process_time(),
        )


def _process_collectors(registry: CollectorRegistry) -> None:
    ProcessCollector(registry=registry)
    registry.register(_PreciseCpuCollector())
    PlatformCollector(registry=registry)
    GCCollector(registry=registry)


@dataclass(frozen=True)
class PoolStats:
    """A snapshot of the asyncpg pool, read at scrape time."""

    size: int
    idle: int
    max_size: int
    min_size: int


class _PoolCollector(Collector):
    """Pool gauges read when Prometheus scrapes, so they are never stale."""

    def __init__(self) -> None:
        self.source: Callable[[], PoolStats] | None = None

    def collect(self) -> Iterator[Metric]:
        if self.source is None:
            return
        stats = self.source()
        for name, documentation, value in (
            ("brink_db_pool_size", "Connections the pool holds open now.", stats.size),
            ("brink_db_pool_in_use", "Connections checked out of the pool now.",
             stats.size - stats.idle),
            ("brink_db_pool_max", "Maximum size of the pool in use now.", stats.max_size),
            ("brink_db_pool_min", "Floor of the pool in use now (at most its maximum).",
             stats.min_size),
        ):  # fmt: skip
            yield GaugeMetricFamily(name, documentation, value=value)


class ResilienceMetrics:
    """State of every resilience mechanism: retries, breaker, shedding, bulkheads, deadlines."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.attempts = Counter(
            "brink_dependency_attempts_total",
            "Attempts sent to a dependency, first tries and retries (amplification numerator).",
            ["target"],
            registry=registry,
        )
        self.calls = Counter(
            "brink_dependency_calls_total",
            "Calls the code made to a dependency before retries (amplification denominator).",
            ["target"],
            registry=registry,
        )
        self.retries = Counter(
            "brink_retries_total",
            "Retries of a dependency call, by retry policy.",
            ["target", "policy"],
            registry=registry,
        )
        self.retry_budget_exhausted = Counter(
            "brink_retry_budget_exhausted_total",
            "Retries refused because the retry budget was spent.",
            ["target"],
            registry=registry,
        )
        self.breaker_state = Gauge(
            "brink_breaker_state",
            "Circuit breaker state: 0 closed, 1 half-open, 2 open.",
            ["target"],
            registry=registry,
        )
        self.breaker_transitions = Counter(
            "brink_breaker_transitions_total",
            "Circuit breaker state changes, by the state entered.",
            ["target", "to"],
            registry=registry,
        )
        self.breaker_rejected = Counter(
            "brink_breaker_rejected_total",
            "Calls refused without trying because the breaker was open (or probing).",
            ["target"],
            registry=registry,
        )
        self.shed = Counter(
            "brink_shed_total",
            "Requests rejected at admission (503 + Retry-After), by reason.",
            ["reason"],
            registry=registry,
        )
        self.admission_in_flight = Gauge(
            "brink_admission_in_flight",
            "Requests admitted and not yet finished (what the admission limit counts).",
            registry=registry,
        )
        self.admission_limit = Gauge(
            "brink_admission_limit",
            "Current admission concurrency limit (static or adaptive); 0 when off.",
            registry=registry,
        )
        self.bulkhead_in_flight = Gauge(
            "brink_bulkhead_in_flight",
            "Calls inside a bulkhead now.",
            ["name"],
            registry=registry,
        )
        self.bulkhead_limit = Gauge(
            "brink_bulkhead_limit",
            "Concurrency limit of a bulkhead; 0 when off.",
            ["name"],
            registry=registry,
        )
        self.bulkhead_rejected = Counter(
            "brink_bulkhead_rejected_total",
            "Calls refused because their bulkhead was full.",
            ["name"],
            registry=registry,
        )
        self.deadline_exceeded = Counter(
            "brink_deadline_exceeded_total",
            "Operations cut short by a deadline, by stage (db_acquire, db_statement, external).",
            ["stage"],
            registry=registry,
        )
        self.preset = Gauge(
            "brink_resilience_preset",
            "The resilience preset in force: 1 for it, 0 for the others (overrides may apply).",
            ["preset"],
            registry=registry,
        )
        self.fault_active = Gauge(
            "brink_fault_active",
            "Service-side fault knobs away from their start-up value: 1 while changed, else 0.",
            ["fault"],
            registry=registry,
        )


class ServiceMetrics:
    """The demo service's metrics."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        _process_collectors(registry)
        self.resilience = ResilienceMetrics(registry)

        # HTTP, per route template.
        self.http_requests = Counter(
            "brink_http_requests_total",
            "HTTP requests answered, by route template, method and status code.",
            ["route", "method", "status"],
            registry=registry,
        )
        self.http_duration = Histogram(
            "brink_http_request_duration_seconds",
            "Time from request start to the end of the response, by route template.",
            ["route", "method"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.http_in_flight = Gauge(
            "brink_http_requests_in_flight",
            "HTTP requests being handled now, by route template.",
            ["route"],
            registry=registry,
        )

        # The asyncpg pool: size and use are read at scrape time.
        self.pool = _PoolCollector()
        registry.register(self.pool)
        self.db_waiters = Gauge(
            "brink_db_pool_waiters",
            "Requests waiting for a pool connection now.",
            registry=registry,
        )
        self.db_acquire_wait = Histogram(
            "brink_db_pool_acquire_wait_seconds",
            "Time spent waiting for a pool connection (timeouts included).",
            buckets=WAIT_BUCKETS,
            registry=registry,
        )
        self.db_acquire_timeouts = Counter(
            "brink_db_pool_acquire_timeouts_total",
            "Pool acquisitions that gave up after the acquire timeout.",
            registry=registry,
        )
        self.db_acquisitions = Counter(
            "brink_db_pool_acquisitions_total",
            "Connections checked out of the pool, by route template.",
            ["route"],
            registry=registry,
        )
        self.db_busy = Counter(
            "brink_db_connection_busy_seconds_total",
            "Seconds connections were checked out, by route template; rate() is the pool use.",
            ["route"],
            registry=registry,
        )

        # The shared client of the slow external API.
        self.external_connections_max = Gauge(
            "brink_external_connections_max",
            "Connection limit of the external API client in use now (the external_pool_size knob).",
            registry=registry,
        )
        self.external_in_flight = Gauge(
            "brink_external_requests_in_flight",
            "Calls to the external API under way now (waiting for a connection included).",
            registry=registry,
        )
        self.external_requests = Counter(
            "brink_external_requests_total",
            "Calls to the external API, by outcome.",
            ["outcome"],
            registry=registry,
        )
        self.external_duration = Histogram(
            "brink_external_request_duration_seconds",
            "Duration of calls to the external API, by outcome.",
            ["outcome"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )

        # The single worker's CPU and event loop.
        self.cpu_work = Counter(
            "brink_cpu_work_seconds_total",
            "CPU seconds spent in request work on the event loop, by route template.",
            ["route"],
            registry=registry,
        )
        self.loop_lag = Histogram(
            "brink_event_loop_lag_seconds",
            "How late the event loop woke a periodic timer: time the loop was blocked or busy.",
            buckets=WAIT_BUCKETS,
            registry=registry,
        )


class SlowApiMetrics:
    """The fake external API's metrics."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        _process_collectors(registry)
        self.requests = Counter(
            "brink_slow_api_requests_total",
            "Quote requests answered, by status code.",
            ["status"],
            registry=registry,
        )
        self.duration = Histogram(
            "brink_slow_api_request_duration_seconds",
            "Time the slow API took to answer a quote request.",
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.in_flight = Gauge(
            "brink_slow_api_requests_in_flight",
            "Quote requests being served now.",
            registry=registry,
        )
        self.knob = Gauge(
            "brink_slow_api_knob",
            "Current value of each latency-model knob (seconds, requests or a fraction).",
            ["knob"],
            registry=registry,
        )
