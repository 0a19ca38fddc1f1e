"""The service's side of a ramp: ``/metrics`` scraped every second, turned into stage figures.

Instant gauges sampled once a second mislead (a pool that is 3/4 busy on average often reads
0 or 1), so the figures come from counters, using Little's law: the rate of a duration sum is
the mean number of requests in that state. ``rate(http duration sum)`` is the mean in-flight,
``rate(pool busy seconds)`` the mean connections in use, ``rate(acquire wait sum)`` the mean
number of waiters.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import httpx2
from prometheus_client.parser import text_string_to_metric_families

from loadtests.samples import ServerSample

Key = tuple[str, tuple[tuple[str, str], ...]]
_IGNORED_ROUTES = frozenset({"/metrics", "/healthz", "/readyz"})
PRECISE_CPU = "brink_process_cpu_seconds_total"
TICK_CPU = "process_cpu_seconds_total"


@dataclass(frozen=True)
class Scrape:
    """One scrape: wall-clock time and every sample, keyed by name and sorted labels."""

    at: float
    values: Mapping[Key, float]

    def total(self, name: str, skip_ignored_routes: bool = True) -> float:
        """Sum of all samples called ``name`` (over every label set)."""
        return sum(
            value
            for (sample, labels), value in self.values.items()
            if sample == name
            and not (skip_ignored_routes and dict(labels).get("route") in _IGNORED_ROUTES)
        )

    def value(self, name: str, **labels: str) -> float:
        return self.values.get((name, tuple(sorted(labels.items()))), 0.0)

    @property
    def cpu_seconds(self) -> float:
        """The process's CPU seconds: brink's exact counter, else the 10 ms-tick standard one."""
        precise = self.values.get((PRECISE_CPU, ()))
        return precise if precise is not None else self.value(TICK_CPU)


def parse(text: str, at: float) -> Scrape:
    values: dict[Key, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            values[(sample.name, tuple(sorted(sample.labels.items())))] = float(sample.value)
    return Scrape(at, values)


class Scraper:
    """Scrapes one ``/metrics`` URL on demand and keeps every scrape."""

    def __init__(self, url: str, timeout_s: float = 2.0) -> None:
        self.url = url
        self.scrapes: list[Scrape] = []
        self._client = httpx2.Client(timeout=timeout_s)

    def scrape(self) -> Scrape | None:
        try:
            response = self._client.get(self.url)
            response.raise_for_status()
        except httpx2.HTTPError:
            return None  # a missed scrape is a gap, not a failure of the run
        scrape = parse(response.text, time.time())
        self.scrapes.append(scrape)
        return scrape

    def close(self) -> None:
        self._client.close()


def increase(first: Scrape, last: Scrape, name: str) -> float:
    """How much the counter ``name`` (all its label sets) grew from ``first`` to ``last``.

    A restarted process starts its counters again from 0: a fall counts as no growth.
    """
    return max(0.0, last.total(name) - first.total(name))


def _nearest(scrapes: Sequence[Scrape], at: float) -> Scrape | None:
    return min(scrapes, key=lambda scrape: abs(scrape.at - at), default=None)


def server_window(scrapes: Sequence[Scrape], start: float, end: float) -> ServerSample | None:
    """The service's mean state between ``start`` and ``end`` (wall clock), from counters."""
    first, last = _nearest(scrapes, start), _nearest(scrapes, end)
    if first is None or last is None or last.at - first.at < 0.5:
        return None
    elapsed = last.at - first.at

    def rate(name: str) -> float:
        return max(0.0, last.total(name) - first.total(name)) / elapsed

    waits = last.total("brink_db_pool_acquire_wait_seconds_count") - first.total(
        "brink_db_pool_acquire_wait_seconds_count"
    )
    wait_sum = last.total("brink_db_pool_acquire_wait_seconds_sum") - first.total(
        "brink_db_pool_acquire_wait_seconds_sum"
    )
    return ServerSample(
        in_flight=rate("brink_http_request_duration_seconds_sum"),
        pool_in_use=rate("brink_db_connection_busy_seconds_total"),
        pool_size=int(last.total("brink_db_pool_max")),
        pool_waiters=rate("brink_db_pool_acquire_wait_seconds_sum"),
        acquire_wait_s=wait_sum / waits if waits > 0 else 0.0,
        external_in_flight=rate("brink_external_request_duration_seconds_sum"),
        cpu_utilisation=max(0.0, last.cpu_seconds - first.cpu_seconds) / elapsed,
        throughput_rps=rate("brink_http_requests_total"),
    )
