"""The capacity probe: each route's demand on each limited resource, measured, not assumed.

For each request kind of the mix, a short burst of sequential requests (no contention, so no
queueing inflates the figures) runs between two scrapes of the service's ``/metrics``. The
counter deltas divided by the number of requests give, per request: the DB connection hold
time, the time spent in external calls, and the service's CPU time. The capacity model
(:mod:`loadtests.capacity`) turns these into a predicted saturation throughput.

The DB hold stretches under load (each await in the transaction resumes late on the busy event
loop), so when the pool is the bottleneck a second, *loaded* stage follows: the whole mix at an
even open-model rate of ``loaded_share`` x the at-rest prediction for a few seconds, sent
concurrently from this process (httpx2's async client). Its hold per route (busy seconds /
acquisitions, the median of three sub-windows) and the loop utilisation the model gives that
rate fit each route's ``db_hold_growth_s`` (:func:`loadtests.capacity.fit_hold_growth`). It adds
about 4.5 s to the probe.
"""

from __future__ import annotations

import asyncio
import itertools
import math
import random
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import httpx2

from loadtests.capacity import Capacities, RouteDemand, fit_hold_growth, predict
from loadtests.mix import Mix
from loadtests.scrape import Scrape, Scraper

ROUTE_OF_KIND = {
    "item": "/items/{item_id}",
    "order": "/orders",
    "quote": "/items/{item_id}/shipping-quote",
    "cpu": "/cpu",
}


_LOADED_WARMUP_S = 1.0
_LOADED_MAX_IN_FLIGHT = 1024
_LOADED_MAX_FAILED = 0.01
_MAX_LOOP_UTILISATION = 0.95
_LOADED_WINDOWS = 3
"""Sub-windows of the loaded stage; each route's hold is the median over them."""
_ACQUIRED = "brink_db_pool_acquisitions_total"
_BUSY = "brink_db_connection_busy_seconds_total"


class ProbeFailed(RuntimeError):
    """The probe could not measure: the service refused or the metrics are missing."""


@dataclass(frozen=True)
class LoadedStage:
    """What the loaded stage measured (for the report; the fit is in the demands)."""

    rate_rps: float
    """Requests sent per second in the measured window (even gaps: the asked rate)."""
    loop_utilisation: float
    """The model's loop utilisation at that rate: rate x CPU per request at rest / cores."""
    service_cores: float
    """The service's CPU in the window, in cores (the measured counterpart of the above)."""
    db_hold_s: dict[str, float]
    """The DB hold per request (busy seconds / acquisitions) of each route that used the pool."""


@dataclass(frozen=True)
class ProbeResult:
    demands: tuple[RouteDemand, ...]
    capacities: Capacities
    loaded: LoadedStage | None = None

    def to_dict(self) -> dict[str, object]:
        return {
            "demands": [demand.__dict__ for demand in self.demands],
            "capacities": self.capacities.__dict__,
            "loaded": None if self.loaded is None else self.loaded.__dict__,
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
    loaded_share: float = 0.7,
    loaded_s: float = 3.0,
) -> ProbeResult:
    """Measure every kind of ``mix`` against the service at ``base_url``, at rest then loaded.

    The loaded stage runs the mix at ``loaded_share`` x the at-rest prediction for a 1 s warm-up
    and ``loaded_s``, when the DB pool is the bottleneck at rest (the only resource whose demand
    the model stretches); ``loaded_share`` 0 skips it. When it cannot measure (the service falls
    behind, requests fail), the holds at rest are used as they are: the ramp still runs.
    """
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
    at_rest = ProbeResult(tuple(demands), capacities)
    prediction = predict(demands, capacities)
    if loaded_share <= 0 or prediction.bottleneck != "db_pool":
        return at_rest  # the model stretches only a bottleneck pool's hold
    rate = loaded_share * prediction.saturation_rps
    progress(f"probe under load: the mix at {rate:.0f} req/s for {loaded_s:g} s")
    try:
        loaded = _loaded_stage(base_url, mix, demands, capacities, rate, loaded_s)
    except ProbeFailed as exc:
        progress(f"probe under load: {exc}; the model uses the holds at rest")
        return at_rest
    progress(
        f"probe under load: {loaded.rate_rps:.0f} req/s, loop {loaded.loop_utilisation:.0%} busy"
        f" by the model ({loaded.service_cores:.2f} cores measured), DB hold "
        + ", ".join(f"{route} {hold * 1e3:.2f} ms" for route, hold in loaded.db_hold_s.items())
    )
    return ProbeResult(fit_growth(demands, loaded), capacities, loaded)


def fit_growth(demands: Sequence[RouteDemand], loaded: LoadedStage) -> tuple[RouteDemand, ...]:
    """Each route's demands with ``db_hold_growth_s`` fitted to its hold in the loaded stage.

    Unchanged when the stage used no measurable loop time (no CPU per request at rest: the
    service's CPU counter ticks in 10 ms steps): there is no utilisation to fit against.
    """
    if loaded.loop_utilisation <= 0:
        return tuple(demands)
    fitted = []
    for demand in demands:
        hold = loaded.db_hold_s.get(demand.route)
        if hold is not None and demand.db_hold_s > 0:
            growth = fit_hold_growth(demand.db_hold_s, hold, loaded.loop_utilisation)
            demand = replace(demand, db_hold_growth_s=growth)
        fitted.append(demand)
    return tuple(fitted)


def measure_loaded(
    marks: Sequence[tuple[Scrape, int]], demands: Sequence[RouteDemand], cores: float
) -> LoadedStage:
    """The loaded stage's figures from scrapes through its window, each with the requests sent.

    The hold of each route is the median over the sub-windows between scrapes, so a second in
    which the box stalls (someone else's burst of CPU) does not set the model; steady
    contention shows in every sub-window and stays. The loop utilisation is the *model's*
    (rate x CPU per request at rest / cores), not the measured CPU: the capacity model
    extrapolates along that same scale, so the fitted curve passes through this stage's hold
    at exactly the utilisation the model gives its rate.
    """
    (first, first_sent), (last, last_sent) = marks[0], marks[-1]
    elapsed, sent = last.at - first.at, last_sent - first_sent
    if elapsed <= 0 or sent <= 0:
        raise ProbeFailed("the loaded stage sent nothing between its scrapes")
    holds = {}
    for demand in demands:
        windows = []
        for (before, _), (after, _) in itertools.pairwise(marks):
            key = {"route": demand.route}
            acquired = after.value(_ACQUIRED, **key) - before.value(_ACQUIRED, **key)
            if acquired > 0:
                windows.append((after.value(_BUSY, **key) - before.value(_BUSY, **key)) / acquired)
        if windows:
            holds[demand.route] = statistics.median(windows)
    rate = sent / elapsed
    cpu = math.fsum(d.share * d.cpu_s for d in demands)
    cpu_seconds = last.value("process_cpu_seconds_total") - first.value("process_cpu_seconds_total")
    return LoadedStage(
        rate_rps=rate,
        loop_utilisation=min(_MAX_LOOP_UTILISATION, rate * cpu / cores),
        service_cores=cpu_seconds / elapsed,
        db_hold_s=holds,
    )


def _loaded_stage(
    base_url: str,
    mix: Mix,
    demands: Sequence[RouteDemand],
    capacities: Capacities,
    rate: float,
    seconds: float,
) -> LoadedStage:
    scraper = Scraper(base_url + "/metrics")
    try:
        marks, failures = asyncio.run(_paced(base_url, mix, rate, seconds, scraper))
    finally:
        scraper.close()
    scraped = [(scrape, sent) for scrape, sent in marks if scrape is not None]
    if len(scraped) < 2:
        raise ProbeFailed(f"cannot read {scraper.url}")
    sent = scraped[-1][1] - scraped[0][1]
    if len(failures) > _LOADED_MAX_FAILED * sent:
        raise ProbeFailed(f"{len(failures)} of {sent} requests failed under load: {failures[0]}")
    return measure_loaded(scraped, demands, capacities.cpu_cores)


async def _paced(
    base_url: str, mix: Mix, rate: float, seconds: float, scraper: Scraper
) -> tuple[list[tuple[Scrape | None, int]], list[str]]:
    """Even arrivals at ``rate`` for a warm-up then ``seconds``, scraped through the window.

    Returns the scrapes (at the window's start and after each of its sub-windows), each with
    the requests sent by then, and every failure's description.
    """
    rng = random.Random("loaded")
    kinds, weights = list(mix.shares()), list(mix.shares().values())
    failures: list[str] = []
    in_flight: set[asyncio.Task[None]] = set()
    limits = httpx2.Limits(max_connections=_LOADED_MAX_IN_FLIGHT)

    async with httpx2.AsyncClient(base_url=base_url, timeout=30.0, limits=limits) as client:

        async def send(kind: str) -> None:
            spec = mix.build(kind, rng)
            try:
                response = await client.request(
                    spec.method, spec.path, json=spec.json, headers=spec.headers
                )
            except httpx2.HTTPError as exc:
                failures.append(f"{spec.name}: {exc!r}")
                return
            if response.status_code >= 400:
                failures.append(f"{spec.name} answered {response.status_code}")

        loop = asyncio.get_running_loop()
        start, gap = loop.time(), 1.0 / rate
        due_marks = [
            start + _LOADED_WARMUP_S + seconds * k / _LOADED_WINDOWS
            for k in range(_LOADED_WINDOWS + 1)
        ]
        marks: list[tuple[Scrape | None, int]] = []
        sent = 0
        while (due := start + sent * gap) < due_marks[-1]:
            if due >= due_marks[len(marks)]:
                marks.append((await asyncio.to_thread(scraper.scrape), sent))
            await asyncio.sleep(max(0.0, due - loop.time()))
            if len(in_flight) >= _LOADED_MAX_IN_FLIGHT:
                raise ProbeFailed(f"{len(in_flight)} requests in flight at {rate:.0f} req/s")
            task = asyncio.create_task(send(rng.choices(kinds, weights)[0]))
            in_flight.add(task)
            task.add_done_callback(in_flight.discard)
            sent += 1
        marks.append((await asyncio.to_thread(scraper.scrape), sent))
        await asyncio.gather(*in_flight)
    return marks, failures
