"""The capacity probe: each route's demand on each limited resource, measured, not assumed.

For each request kind of the mix, a short burst of sequential requests (no contention, so no
queueing inflates the figures) runs between two scrapes of the service's ``/metrics``. The
counter deltas divided by the number of requests give, per request: the DB connection hold
time, the time spent in external calls, and the service's CPU time. The capacity model
(:mod:`loadtests.capacity`) turns these into a predicted saturation throughput.

Figures at rest are not figures under load, so a second, *loaded* stage follows: the whole mix
at an even open-model rate for a few seconds, sent concurrently from this process (httpx2's
async client). A 1 s warm-up at ``loaded_share`` x the at-rest prediction measures the
service's CPU per request under load (at rest it reads a median 1.6 times high: every request
wakes an idle process); the measured window then runs at ``loaded_share`` x the prediction with that
CPU. The window gives the mix's CPU per request, which replaces the one at rest, and each
route's DB hold (busy seconds / acquisitions, the median of three sub-windows), which with the
loop utilisation it was measured at fits each route's ``db_hold_growth_s``
(:func:`loadtests.capacity.fit_hold_growth`): the hold stretches under load because each await
in the transaction resumes late on the busy event loop. It adds about 4.5 s to the probe.

CPU is read from ``brink_process_cpu_seconds_total`` (the kernel's nanosecond clock), not the
10 ms-tick ``process_cpu_seconds_total``, when the service exports it.
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

from loadtests.box_speed import BoxSpeed, cpu_speeds
from loadtests.capacity import LOOP_SHARE, Capacities, RouteDemand, fit_hold_growth, predict
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
    cpu_s: float
    """The service's CPU seconds per request in the window (exact clock, the whole mix)."""
    loop_utilisation: float
    """The event loop's utilisation: ``rate_rps x cpu_s / cores`` (capped at 0.95)."""
    db_hold_s: dict[str, float]
    """The DB hold per request (busy seconds / acquisitions) of each route that used the pool."""

    @property
    def service_cores(self) -> float:
        """The service's CPU in the window, in cores."""
        return self.rate_rps * self.cpu_s


@dataclass(frozen=True)
class ProbeResult:
    demands: tuple[RouteDemand, ...]
    """What the model uses: the figures at rest, with the loaded stage's CPU and hold growth."""
    capacities: Capacities
    loaded: LoadedStage | None = None
    at_rest: tuple[RouteDemand, ...] = ()
    """The figures at rest as the bursts measured them (when a loaded stage changed them)."""
    box_speed: BoxSpeed | None = None
    """How fast the box's CPUs ran during the probe (:mod:`loadtests.box_speed`)."""

    def to_dict(self) -> dict[str, object]:
        return {
            "demands": [demand.__dict__ for demand in self.demands],
            "capacities": self.capacities.__dict__,
            "loaded": None if self.loaded is None else self.loaded.__dict__,
            "at_rest": [demand.__dict__ for demand in self.at_rest],
            "box_speed_ms": None if self.box_speed is None else list(self.box_speed.per_cpu_ms),
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
        cpu_s=(after.cpu_seconds - before.cpu_seconds) / sent,
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
    loop_share: float = LOOP_SHARE,
) -> ProbeResult:
    """Measure every kind of ``mix`` against the service at ``base_url``, at rest then loaded.

    The loaded stage runs the mix for a 1 s warm-up at ``loaded_share`` x the at-rest
    prediction, then for ``loaded_s`` at ``loaded_share`` x the prediction with the CPU per
    request the warm-up measured; ``loaded_share`` 0 skips it. When it cannot measure (the
    service falls behind, requests fail), the figures at rest are used as they are: the ramp
    still runs. ``loop_share`` is the model's usable share of the service's core
    (:attr:`Capacities.loop_share`). The box's speed is read before the bursts, after them and
    after the loaded stage.
    """
    scraper = Scraper(base_url + "/metrics")
    demands = []
    speeds = [cpu_speeds()]
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
        loop_share=loop_share,
    )
    speeds.append(cpu_speeds())
    at_rest = ProbeResult(tuple(demands), capacities, box_speed=BoxSpeed.of(speeds))
    if loaded_share <= 0:
        return at_rest

    def rate_for(cpu_s: float | None) -> float:
        """``loaded_share`` x the prediction, the mix's CPU per request rescaled to ``cpu_s``."""
        scaled = demands if cpu_s is None else with_cpu(demands, cpu_s)
        return loaded_share * predict(scaled, capacities).saturation_rps

    rate = rate_for(None)
    progress(f"probe under load: the mix at {rate:.0f} req/s for a 1 s warm-up")
    try:
        loaded = _loaded_stage(base_url, mix, capacities, rate, rate_for, loaded_s)
    except ProbeFailed as exc:
        progress(f"probe under load: {exc}; the model uses the figures at rest")
        return at_rest
    speeds.append(cpu_speeds())
    holds = ", ".join(f"{route} {hold * 1e3:.2f} ms" for route, hold in loaded.db_hold_s.items())
    progress(
        f"probe under load: {loaded.rate_rps:.0f} req/s for {loaded_s:g} s, CPU"
        f" {loaded.cpu_s * 1e3:.2f} ms per request (loop {loaded.loop_utilisation:.0%} busy),"
        f" DB hold {holds or 'none'}"
    )
    return ProbeResult(
        fit_loaded(demands, loaded), capacities, loaded, tuple(demands), BoxSpeed.of(speeds)
    )


def with_cpu(demands: Sequence[RouteDemand], cpu_s: float) -> tuple[RouteDemand, ...]:
    """The demands with each route's CPU scaled so that the mix uses ``cpu_s`` per request.

    The loaded stage measures the whole mix's CPU, not each route's: the split among routes is
    kept from the probe at rest, the level comes from the load. (At rest each request pays for
    a whole wake-up of an idle process, so its CPU reads a median 1.6 times higher (0.9-2.2
    times over 38 probes): 1.18-2.73 ms per order at rest, 0.76-2.42 ms under load.)
    """
    at_rest = math.fsum(d.share * d.cpu_s for d in demands)
    if at_rest <= 0 or cpu_s <= 0:
        return tuple(demands)
    return tuple(replace(d, cpu_s=d.cpu_s * cpu_s / at_rest) for d in demands)


def fit_loaded(demands: Sequence[RouteDemand], loaded: LoadedStage) -> tuple[RouteDemand, ...]:
    """The demands as the loaded stage measured them: its CPU, each route's hold growth.

    Each route's ``db_hold_growth_s`` puts its hold curve through the hold it had in the stage,
    at the loop utilisation the stage measured; the model extrapolates along the same scale
    (rate x CPU per request under load). With no loop time measured there is nothing to fit.
    """
    fitted = []
    for demand in with_cpu(demands, loaded.cpu_s):
        hold = loaded.db_hold_s.get(demand.route)
        if hold is not None and demand.db_hold_s > 0 and loaded.loop_utilisation > 0:
            growth = fit_hold_growth(demand.db_hold_s, hold, loaded.loop_utilisation)
            demand = replace(demand, db_hold_growth_s=growth)
        fitted.append(demand)
    return tuple(fitted)


def _cpu_per_request(first: tuple[Scrape, int], last: tuple[Scrape, int]) -> float | None:
    sent = last[1] - first[1]
    cpu = last[0].cpu_seconds - first[0].cpu_seconds
    return cpu / sent if sent > 0 and cpu > 0 else None


def measure_loaded(marks: Sequence[tuple[Scrape, int]], cores: float) -> LoadedStage:
    """The loaded stage's figures from scrapes through its window, each with the requests sent.

    The hold of each route is the median over the sub-windows between scrapes, so a second in
    which the box stalls (someone else's burst of CPU) does not set the model; steady
    contention shows in every sub-window and stays. The CPU is the whole window's.
    """
    (first, first_sent), (last, last_sent) = marks[0], marks[-1]
    elapsed, sent = last.at - first.at, last_sent - first_sent
    if elapsed <= 0 or sent <= 0:
        raise ProbeFailed("the loaded stage sent nothing between its scrapes")
    windows: dict[str, list[float]] = {}
    for (before, _), (after, _) in itertools.pairwise(marks):
        routes = {dict(labels)["route"] for name, labels in after.values if name == _ACQUIRED}
        for route in sorted(routes):
            acquired = after.value(_ACQUIRED, route=route) - before.value(_ACQUIRED, route=route)
            if acquired > 0:
                busy = after.value(_BUSY, route=route) - before.value(_BUSY, route=route)
                windows.setdefault(route, []).append(busy / acquired)
    cpu_s = _cpu_per_request(marks[0], marks[-1]) or 0.0
    rate = sent / elapsed
    return LoadedStage(
        rate_rps=rate,
        cpu_s=cpu_s,
        loop_utilisation=min(_MAX_LOOP_UTILISATION, rate * cpu_s / cores),
        db_hold_s={route: statistics.median(holds) for route, holds in windows.items()},
    )


def _loaded_stage(
    base_url: str,
    mix: Mix,
    capacities: Capacities,
    rate: float,
    rate_for: Callable[[float | None], float],
    seconds: float,
) -> LoadedStage:
    scraper = Scraper(base_url + "/metrics")

    def retarget(warm_up: Sequence[tuple[Scrape | None, int]]) -> float:
        (first, first_sent), (last, last_sent) = warm_up
        if first is None or last is None:
            return rate
        return rate_for(_cpu_per_request((first, first_sent), (last, last_sent)))

    try:
        marks, failures = asyncio.run(_paced(base_url, mix, rate, retarget, seconds, scraper))
    finally:
        scraper.close()
    if any(scrape is None for scrape, _ in marks):
        raise ProbeFailed(f"cannot read {scraper.url}")
    scraped = [(scrape, sent) for scrape, sent in marks if scrape is not None]
    sent = scraped[-1][1] - scraped[0][1]
    if len(failures) > _LOADED_MAX_FAILED * sent:
        raise ProbeFailed(f"{len(failures)} of {sent} requests failed under load: {failures[0]}")
    return measure_loaded(scraped, capacities.cpu_cores)


async def _paced(
    base_url: str,
    mix: Mix,
    rate: float,
    retarget: Callable[[Sequence[tuple[Scrape | None, int]]], float],
    seconds: float,
    scraper: Scraper,
) -> tuple[list[tuple[Scrape | None, int]], list[str]]:
    """Even arrivals: a warm-up at ``rate``, then ``seconds`` at ``retarget(warm-up scrapes)``.

    Returns the scrapes of the measured window (at its start and after each sub-window), each
    with the requests sent by then, and every failure's description.
    """
    rng = random.Random("loaded")
    kinds, weights = list(mix.shares()), list(mix.shares().values())
    failures: list[str] = []
    in_flight: set[asyncio.Task[None]] = set()
    limits = httpx2.Limits(max_connections=_LOADED_MAX_IN_FLIGHT)
    sent = 0

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

        async def arrivals(rate: float, seconds: float) -> None:
            nonlocal sent
            loop = asyncio.get_running_loop()
            start, gap, count = loop.time(), 1.0 / rate, math.ceil(seconds * rate)
            for k in range(count):
                await asyncio.sleep(max(0.0, start + k * gap - loop.time()))
                if len(in_flight) >= _LOADED_MAX_IN_FLIGHT:
                    raise ProbeFailed(f"{len(in_flight)} requests in flight at {rate:.0f} req/s")
                task = asyncio.create_task(send(rng.choices(kinds, weights)[0]))
                in_flight.add(task)
                task.add_done_callback(in_flight.discard)
                sent += 1

        async def mark() -> tuple[Scrape | None, int]:
            return await asyncio.to_thread(scraper.scrape), sent

        warm_up = [await mark()]
        await arrivals(rate, _LOADED_WARMUP_S)
        warm_up.append(await mark())
        rate = retarget(warm_up)
        marks = [warm_up[-1]]
        for _ in range(_LOADED_WINDOWS):
            await arrivals(rate, seconds / _LOADED_WINDOWS)
            marks.append(await mark())
        await asyncio.gather(*in_flight)
    return marks, failures
