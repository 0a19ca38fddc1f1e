"""The capacity probe: each route's demand on each limited resource, measured, not assumed.

For each request kind of the mix, a short burst of sequential requests (no contention, so no
queueing inflates the figures) runs between two scrapes of the service's ``/metrics``. The
counter deltas divided by the number of requests give, per request: the DB connection hold
time, the time spent in external calls, and the service's CPU time. The capacity model
(:mod:`loadtests.capacity`) turns these into a predicted saturation throughput.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass

import httpx2

from loadtests.capacity import Capacities, RouteDemand
from loadtests.mix import Mix
from loadtests.scrape import Scrape, Scraper

ROUTE_OF_KIND = {
    "item": "/items/{item_id}",
    "order": "/orders",
    "quote": "/items/{item_id}/shipping-quote",
    "cpu": "/cpu",
}


class ProbeFailed(RuntimeError):
    """The probe could not measure: the service refused or the metrics are missing."""


@dataclass(frozen=True)
class ProbeResult:
    demands: tuple[RouteDemand, ...]
    capacities: Capacities

    def to_dict(self) -> dict[str, object]:
        return {
            "demands": [demand.__dict__ for demand in self.demands],
            "capacities": self.capacities.__dict__,
        }


def _burst(client: httpx2.Client, mix: Mix, kind: str, min_requests: int, min_s: float) -> int:
    """Send ``kind`` requests one after another for at least ``min_s`` and ``min_requests``."""
    rng = random.Random(kind)
    sent, started = 0, time.monotonic()
    while sent < min_requests or time.monotonic() - started < min_s:
        spec = mix.build(kind, rng)
        response = client.request(spec.method, spec.path, json=spec.json, headers=spec.headers)
        if response.status_code >= 400:
            raise ProbeFailed(f"{spec.name} answered {response.status_code}: {response.text[:200]}")
        sent += 1
    return sent


def _demand(kind: str, share: float, before: Scrape, after: Scrape, sent: int) -> RouteDemand:
    route = ROUTE_OF_KIND[kind]

    def delta(name: str, **labels: str) -> float:
        if labels:
            return after.value(name, **labels) - before.value(name, **labels)
        return after.total(name, skip_ignored_routes=False) - before.total(
            name, skip_ignored_routes=False
        )

    return RouteDemand(
        route=route,
        share=share,
        db_hold_s=delta("brink_db_connection_busy_seconds_total", route=route) / sent,
        external_s=delta("brink_external_request_duration_seconds_sum") / sent,
        cpu_s=delta("process_cpu_seconds_total") / sent,
    )


def _external_api_rps(slow_api_metrics_url: str | None) -> float | None:
    if slow_api_metrics_url is None:
        return None
    scraper = Scraper(slow_api_metrics_url)
    try:
        scrape = scraper.scrape()
    finally:
        scraper.close()
    if scrape is None:
        return None
    capacity = scrape.value("brink_slow_api_knob", knob="capacity")
    base = scrape.value("brink_slow_api_knob", knob="base_latency_s")
    return capacity / base if capacity > 0 and base > 0 else None


def probe(
    base_url: str,
    mix: Mix,
    slow_api_metrics_url: str | None = None,
    min_requests: int = 30,
    min_s: float = 1.0,
    progress: Callable[[str], None] = lambda _: None,
) -> ProbeResult:
    """Measure every kind of ``mix`` against the service at ``base_url``."""
    scraper = Scraper(base_url + "/metrics")
    demands = []
    try:
        with httpx2.Client(base_url=base_url, timeout=30.0) as client:
            for kind, share in mix.shares().items():
                before = scraper.scrape()
                sent = _burst(client, mix, kind, min_requests, min_s)
                after = scraper.scrape()
                if before is None or after is None:
                    raise ProbeFailed(f"cannot read {scraper.url}")
                demand = _demand(kind, share, before, after, sent)
                progress(
                    f"probe {kind}: {sent} requests, DB hold {demand.db_hold_s * 1e3:.2f} ms,"
                    f" external {demand.external_s * 1e3:.2f} ms, CPU {demand.cpu_s * 1e3:.2f} ms"
                )
                demands.append(demand)
        limits = scraper.scrape()
    finally:
        scraper.close()
    if limits is None:
        raise ProbeFailed(f"cannot read {scraper.url}")
    capacities = Capacities(
        pool_size=int(limits.total("brink_db_pool_max")),
        external_connections=int(limits.total("brink_external_connections_max")),
        cpu_cores=1.0,
        external_api_rps=_external_api_rps(slow_api_metrics_url),
    )
    return ProbeResult(tuple(demands), capacities)
