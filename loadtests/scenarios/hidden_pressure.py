"""``hidden-pressure-point``: orders queue on one hot row while the CPU idles — name the real limit.

The lesson: the resource that is saturated is not always the one a dashboard shows first. Orders
of a popular item take its row lock (``SELECT … FOR UPDATE``); with the fault ``hot_row_lock_s``
each holds it a while. Orders of the same item wait for the lock *while holding a pool
connection*, so the pool fills and every route waits for a connection, while the service's CPU
stays low. Reading only the service, one would blame the pool (and add connections, which only
lets more orders wait on the same row). The scenario scrapes brink's Postgres exporter beside the
service and names the bottleneck with
:func:`~loadtests.scenarios.verdicts.name_bottleneck`: backends blocked by another backend,
lock-wait seconds per second, against pool use and CPU.

One flat, orders-heavy phase on the fragile preset (no statement timeout, so the waits show
in full): healthy first, then the hot-row hold on item 1 for the rest of the run.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from loadtests.faults.spec import FaultSchedule, parse_step
from loadtests.scenarios.base import ScenarioResult, StackNeeds, Verdict
from loadtests.scenarios.context import ScenarioContext
from loadtests.scenarios.verdicts import (
    ORDER_ROUTE,
    Bottleneck,
    Span,
    fault_span,
    load_span,
    name_bottleneck,
    route_quantile,
)
from loadtests.scrape import Scrape, Scraper

MIX = "item=3,order=7"
"""Orders-heavy; the mix sends half the orders to items 1..5, so item 1 gets ~10% of them."""
LOAD_SHARE = 0.4
HOT_ROW = ("service.hot_items=1", "service.hot_row_lock_s=0.3")
"""Orders of item 1 hold its row lock 300 ms: at ≥ 40 req/s of this mix that row is busy more
than all the time, and its queue of waiters holds the pool."""
SETTLE_S = 5.0
LOCK_SETTLE_S = 5.0
"""Left out after the hold starts: the queue on the row takes a moment to build."""
DRAIN_S = 60.0
CPU_LOW = 0.5
"""The service's CPU must stay under half a core for the lesson (it is not a CPU problem)."""


@dataclass(frozen=True)
class Timing:
    step_s: float
    hold_at_s: float

    def schedule(self) -> FaultSchedule:
        return FaultSchedule(
            tuple(parse_step(f"at {self.hold_at_s:g}s set {knob}") for knob in HOT_ROW)
        )


def timing(quick: bool, step_s: float | None) -> Timing:
    """Three flat stages; the hold starts a second after the first one ends (stays on)."""
    step = step_s or (12.0 if quick else 30.0)
    return Timing(step, hold_at_s=step + 1.0)


class ScrapeSampler:
    """Scrapes one ``/metrics`` every ``interval_s`` in a thread while a phase runs."""

    def __init__(self, url: str, interval_s: float = 1.0) -> None:
        self._scraper = Scraper(url)
        self._interval_s = interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="brink-pg-scrapes", daemon=True)

    def __enter__(self) -> ScrapeSampler:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()
        self._scraper.close()

    @property
    def scrapes(self) -> list[Scrape]:
        return list(self._scraper.scrapes)

    def _run(self) -> None:
        while not self._stop.is_set():
            self._scraper.scrape()
            self._stop.wait(self._interval_s)


def pressure_verdict(
    before: Bottleneck | None,
    during: Bottleneck | None,
    orders_p95: tuple[float | None, float | None],
) -> Verdict:
    """Passed when the hold's window names the row-lock wait and the CPU stayed low."""
    figures: dict[str, float] = {}
    for when, found in (("before", before), ("during", during)):
        if found is not None:
            figures |= {f"{when}_{key}": value for key, value in found.evidence.items()}
    for when, p95 in zip(("before", "during"), orders_p95, strict=True):
        if p95 is not None:
            figures[f"orders_p95_{when}_s"] = p95
    if during is None:
        return Verdict(False, "no data", "No verdict: too few service scrapes in the window.",
                       figures)  # fmt: skip
    cpu = during.evidence["cpu_utilisation"]
    named = during.resource == "row-lock wait"
    latency = ""
    if orders_p95[0] is not None and orders_p95[1] is not None:
        latency = (
            f" Orders' p95 (service side) went from {orders_p95[0] * 1000:.0f} ms to"
            f" {orders_p95[1] * 1000:.0f} ms."
        )
    headline = f"{during.explanation}{latency}"
    if named and cpu < CPU_LOW:
        return Verdict(True, "row-lock wait named", headline, figures)
    if named:
        return Verdict(False, "cpu busy too", f"{headline} The CPU was not idle.", figures)
    if "lock_wait_s_per_s" not in during.evidence:
        headline += " (No Postgres exporter scrapes: lock waits unseen.)"
    return Verdict(False, f"named {during.resource}", headline, figures)


class HiddenPressure:
    name = "hidden-pressure-point"
    description = (
        "hot-row lock contention on an orders-heavy load: the pool looks full and the CPU idles;"
        " the verdict names the row-lock wait"
    )
    needs = StackNeeds(pg_exporter=True)

    def run(self, ctx: ScenarioContext) -> ScenarioResult:
        clock = timing(ctx.options.quick, ctx.options.step_s)
        predicted = ctx.predict(MIX).saturation_rps
        rate = round(LOAD_SHARE * predicted, 1)
        config = ctx.flat_config(rate, clock.step_s, mix=MIX)
        ctx.say(
            f"hidden-pressure-point: {rate:g} req/s flat ({LOAD_SHARE:.0%} of the predicted"
            f" {predicted:.0f}), then {', '.join(HOT_ROW)}"
        )
        ctx.reset()
        ctx.set_preset("fragile")
        url = ctx.pg_exporter_url
        pg_scrapes: list[Scrape] = []
        if url is None:
            ctx.say("no Postgres exporter: lock waits will not be seen")
            phase = ctx.phase("hot-row", config, clock.schedule())
        else:
            with ScrapeSampler(url) as sampler:
                phase = ctx.phase("hot-row", config, clock.schedule())
            pg_scrapes = sampler.scrapes
        if ctx.stack is None:  # someone else's service: leave it as we found it
            ctx.drain(timeout_s=DRAIN_S)
            ctx.reset()
        load = load_span(phase.timeline, phase.ended_at)
        hold = fault_span(phase.faults, phase.ended_at)
        before: Bottleneck | None = None
        during: Bottleneck | None = None
        p95: tuple[float | None, float | None] = (None, None)
        if load is not None and hold is not None:
            spans: tuple[Span, Span] = (
                (load[0] + SETTLE_S, hold[0]),
                (hold[0] + LOCK_SETTLE_S, min(load[1], hold[1])),
            )
            scrapes = phase.service_scrapes
            before = name_bottleneck(scrapes, spans[0], pg_scrapes)
            during = name_bottleneck(scrapes, spans[1], pg_scrapes)
            p95 = (
                route_quantile(scrapes, spans[0], ORDER_ROUTE, 0.95, method="POST"),
                route_quantile(scrapes, spans[1], ORDER_ROUTE, 0.95, method="POST"),
            )
        verdict = pressure_verdict(before, during, p95)
        figures = {**verdict.figures, "load_rps": rate, "predicted_rps": predicted}
        notes = [f"before the hold: {before.explanation}"] if before is not None else []
        return ScenarioResult(
            self.name,
            self.description,
            Verdict(verdict.passed, verdict.label, verdict.headline, figures),
            [phase],
            notes,
        )


SCENARIO = HiddenPressure()
