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
in the transaction resumes late on the busy event loop.

Last, the probe keeps the service *full* for 3 s (1 s of it warm-up): a closed loop of
``pool + 32`` senders, each sending its next request when the last returns, so work is always
queued and nothing can run away (:class:`FullLoop`). When the loop burned at least half its
core there, it is what held the service back, and its CPU per request and the share of a core
it reached become the model's CPU demand and capacity (:func:`model_cpu`): the CPU a request
costs where the loop saturates, not at 0.7 x the first guess (a light mix's falls as the rate
rises). The loaded stage and the burst add about 7.5 s to the probe.

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
from dataclasses import asdict, dataclass, replace
from typing import Literal

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
_FULL_IN_FLIGHT = 32
"""Requests the full-loop burst keeps outstanding on top of one per DB connection."""
_FULL_WARMUP_S = 1.0
_FULL_S = 2.0
_FULL_LOOP = 0.5
"""A loop this busy (cores of CPU) in the full-loop burst held the service back."""
_FULL_POOL = 0.9
"""Else a pool this busy (share of its connections in use) held it back."""
_ACQUIRED = "brink_db_pool_acquisitions_total"
_BUSY = "brink_db_connection_busy_seconds_total"
_EXTERNAL = "brink_external_request_duration_seconds_sum"


class ProbeFailed(RuntimeError):
    """The probe could not measure: the service refused or the metrics are missing."""


Holder = Literal["loop", "db_pool", "external_pool", "sender"]
_HOLDERS: dict[Holder, str] = {
    "loop": "the event loop",
    "db_pool": "the DB pool",
    "external_pool": "the external pool",
    "sender": "the probe's own sender",
}


@dataclass(frozen=True)
class FullLoop:
    """The mix with ``in_flight`` requests always outstanding: the service as busy as it gets.

    A closed loop: each of ``in_flight`` senders sends its next request when the last one
    returns, so the service always has work queued and never falls behind for good.
    """

    in_flight: int
    rate_rps: float
    """Requests completed per second."""
    cpu_s: float
    """The service's CPU seconds per request (exact clock, the whole mix)."""
    held_back_by: Holder
    """What held the service back: ``loop`` (its event loop, so its CPU), ``db_pool``,
    ``external_pool`` or ``sender`` (the probe could not keep it full): see :func:`measure_full`."""

    @property
    def service_cores(self) -> float:
        """The service's CPU in the burst, in cores: the share of its core the loop reached."""
        return self.rate_rps * self.cpu_s

    @property
    def loop_bound(self) -> bool:
        return self.held_back_by == "loop"

    @property
    def holder(self) -> str:
        """What held the service back, in words."""
        return _HOLDERS[self.held_back_by]


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
    full: FullLoop | None = None
    """The burst that kept the service full, after the window (None when it could not run)."""

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
            "loaded": None if self.loaded is None else asdict(self.loaded),
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
    loop_share: float | None = None,
) -> ProbeResult:
    """Measure every kind of ``mix`` against the service at ``base_url``, at rest then loaded.

    The loaded stage runs the mix for a 1 s warm-up at ``loaded_share`` x the at-rest
    prediction, then for ``loaded_s`` at ``loaded_share`` x the prediction with the CPU per
    request the warm-up measured; ``loaded_share`` 0 skips it. When it cannot measure (the
    service falls behind, requests fail), the figures at rest are used as they are: the ramp
    still runs. Then it keeps the service full for a moment (:class:`FullLoop`); when the event
    loop was the limit there, its CPU per request and the share of a core it reached are the
    model's CPU demand and capacity. ``loop_share`` overrides that share
    (:attr:`Capacities.loop_share`; :data:`LOOP_SHARE` when nothing measured it). The box's
    speed is read before the bursts, after them and after the loaded stage.
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
        loop_share=LOOP_SHARE if loop_share is None else loop_share,
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
    full = loaded.full
    if full is not None:
        progress(
            f"probe kept full ({full.in_flight} in flight): {full.rate_rps:.0f} req/s, CPU"
            f" {full.cpu_s * 1e3:.2f} ms per request, {full.service_cores:.2f} of a core;"
            f" held back by {full.holder}"
        )
    if loop_share is None:
        capacities = model_capacities(capacities, loaded)
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


def model_cpu(loaded: LoadedStage) -> float:
    """The mix's CPU per request for the model: the full loop's when the loop was the limit.

    The CPU a request costs changes with the load: a light mix's falls as the rate rises (more
    requests share each turn of the loop), an order's rises when connections are contended. A
    CPU-bound service tips with its loop full, so the CPU per request measured *full* is the one
    the bottleneck law needs; the window's, at 0.7 x the first guess, read 0.96-1.48 times it
    in 13 CPU-bound probes. When something else held the burst back, the loop was not full and
    the window's CPU stays.
    """
    full = loaded.full
    return full.cpu_s if full is not None and full.loop_bound else loaded.cpu_s


def model_capacities(capacities: Capacities, loaded: LoadedStage) -> Capacities:
    """The capacities with the loop's share measured full, when the loop was the limit there.

    The share goes with :func:`model_cpu`: both come from the same burst or neither does.
    """
    full = loaded.full
    if full is None or not full.loop_bound:
        return capacities
    return replace(capacities, loop_share=min(1.0, full.service_cores / capacities.cpu_cores))


def fit_loaded(demands: Sequence[RouteDemand], loaded: LoadedStage) -> tuple[RouteDemand, ...]:
    """The demands as the loaded stage measured them: its CPU, each route's hold growth.

    Each route's ``db_hold_growth_s`` puts its hold curve through the hold it had in the stage,
    at the loop utilisation the stage had on the model's scale (the window's rate x the model's
    CPU per request, :func:`model_cpu`), so the model extrapolates along that same scale. With
    no loop time measured there is nothing to fit.
    """
    cpu_s = model_cpu(loaded)
    rho = loaded.loop_utilisation * cpu_s / loaded.cpu_s if loaded.cpu_s > 0 else 0.0
    rho = min(_MAX_LOOP_UTILISATION, rho)
    fitted = []
    for demand in with_cpu(demands, cpu_s):
        hold = loaded.db_hold_s.get(demand.route)
        if hold is not None and demand.db_hold_s > 0 and rho > 0:
            growth = fit_hold_growth(demand.db_hold_s, hold, rho)
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


def measure_full(
    first: tuple[Scrape, int], last: tuple[Scrape, int], in_flight: int, capacities: Capacities
) -> FullLoop | None:
    """The full-loop burst's figures from a scrape at its start and its end (None if empty).

    The event loop held the service back when it burned at least half of its core (of each
    core, with more): a pool can look full then only because its connections wait for the
    loop too (pool 20 / 20 ms here: 0.63-0.68 of a core, the pool nine-tenths busy with
    holds stretched from 21 to 27 ms). With the loop less busy, a pool held it back if its
    connections were at least nine-tenths busy (Little's law: the rate of their busy seconds,
    or of the external calls' duration sum, is the mean number in use); seen here: 0.13-0.40 of
    a core for pools of 2-16 with 10-50 ms holds. Neither: the probe's sender could not keep
    the service full (a busy machine), and the burst says nothing about the loop.
    """
    (before, sent_before), (after, sent_after) = first, last
    elapsed, sent = after.at - before.at, sent_after - sent_before
    cpu_s = _cpu_per_request(first, last)
    if elapsed <= 0 or sent <= 0 or cpu_s is None:
        return None

    def delta(name: str) -> float:
        return after.total(name) - before.total(name)

    rate = sent / elapsed
    held_back_by: Holder
    if rate * cpu_s >= _FULL_LOOP * capacities.cpu_cores:
        held_back_by = "loop"
    elif delta(_BUSY) / elapsed >= _FULL_POOL * capacities.pool_size:
        held_back_by = "db_pool"
    elif delta(_EXTERNAL) / elapsed >= _FULL_POOL * capacities.external_connections:
        held_back_by = "external_pool"
    else:
        held_back_by = "sender"
    return FullLoop(in_flight, rate, cpu_s, held_back_by)


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

    in_flight = _FULL_IN_FLIGHT + capacities.pool_size
    try:
        marks, full_marks, failures, full_failures = asyncio.run(
            _paced(base_url, mix, rate, retarget, seconds, scraper, in_flight)
        )
    finally:
        scraper.close()
    if any(scrape is None for scrape, _ in marks):
        raise ProbeFailed(f"cannot read {scraper.url}")
    scraped = [(scrape, sent) for scrape, sent in marks if scrape is not None]
    sent = scraped[-1][1] - scraped[0][1]
    if len(failures) > _LOADED_MAX_FAILED * sent:
        raise ProbeFailed(f"{len(failures)} of {sent} requests failed under load: {failures[0]}")
    loaded = measure_loaded(scraped, capacities.cpu_cores)
    (first, first_sent), (last, last_sent) = full_marks
    burst_sent = last_sent - scraped[-1][1]
    if first is None or last is None or full_failures > _LOADED_MAX_FAILED * burst_sent:
        return loaded  # a full service that refused requests (shedding, deadlines): no figure
    return replace(
        loaded, full=measure_full((first, first_sent), (last, last_sent), in_flight, capacities)
    )


async def _paced(
    base_url: str,
    mix: Mix,
    rate: float,
    retarget: Callable[[Sequence[tuple[Scrape | None, int]]], float],
    seconds: float,
    scraper: Scraper,
    in_flight_when_full: int,
) -> tuple[list[tuple[Scrape | None, int]], list[tuple[Scrape | None, int]], list[str], int]:
    """Even arrivals: a warm-up at ``rate``, then ``seconds`` at ``retarget(warm-up scrapes)``;
    then a closed loop that keeps ``in_flight_when_full`` requests outstanding.

    Returns the scrapes of the measured window (at its start and after each sub-window) and of
    the closed loop's measured part (start, end), each with the requests sent by then; every
    failure's description until the closed loop, and how many failed in it.
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

        async def closed_loop(senders: int, seconds: float) -> None:
            """``senders`` each send their next request when the last returns, for ``seconds``."""
            loop = asyncio.get_running_loop()
            stop = loop.time() + seconds

            async def sender() -> None:
                nonlocal sent
                while loop.time() < stop:
                    sent += 1
                    await send(rng.choices(kinds, weights)[0])

            await asyncio.gather(*(sender() for _ in range(senders)))

        warm_up = [await mark()]
        await arrivals(rate, _LOADED_WARMUP_S)
        warm_up.append(await mark())
        rate = retarget(warm_up)
        marks = [warm_up[-1]]
        for _ in range(_LOADED_WINDOWS):
            await arrivals(rate, seconds / _LOADED_WINDOWS)
            marks.append(await mark())
        await asyncio.gather(*in_flight)
        paced_failures = len(failures)
        await closed_loop(in_flight_when_full, _FULL_WARMUP_S)
        full = [await mark()]
        await closed_loop(in_flight_when_full, _FULL_S)
        full.append(await mark())
    return marks, full, failures[:paced_failures], len(failures) - paced_failures
