"""``retry-storm``: a slow, failing dependency and naive retries — how many calls per request?

The lesson: a retry policy multiplies the load on a dependency exactly when it is least able to
take it. With the slow API answering 80% of calls with a 503 (and 50 ms slower), the fragile
preset's naive policy (four immediate tries) sends ~2.9 calls for every client request; the
resilient preset's budgeted retries (≤ 3 tries, ~10% retry budget) and its circuit breaker send
at most ~1.1, and fewer once the breaker opens. Both presets run the same flat load of shipping
quotes and item reads, the same storm in the middle; the report gives the amplification —
requests reaching the dependency / client requests, from the service's own counters — and the
spill-over onto the DB route (``GET /items/{item_id}``'s p95 and 5xx share, before vs during).

The generator does not retry here (``client_retries="none"``), so the quote requests the service
answered are exactly the clients' requests, and every extra call is the service's doing.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from loadtests.capacity import Prediction
from loadtests.faults.spec import FaultSchedule, parse_step
from loadtests.mix import Mix, parse_weights
from loadtests.scenarios.base import Phase, ScenarioResult, StackNeeds, Verdict
from loadtests.scenarios.context import ScenarioContext
from loadtests.scenarios.verdicts import (
    Amplification,
    SpillOver,
    amplification,
    fault_span,
    load_span,
    spill_over,
)
from loadtests.series import window

MIX = "item=7,quote=3"
"""Shipping quotes (the dependency's route) and item reads (the DB route the storm may spill on)."""
LOAD_SHARE = 0.25
"""Flat load as a share of the predicted saturation: healthy before the storm."""
ERROR_RATE = 0.8
EXTRA_LATENCY_S = 0.05
STORM = (f"slow_api.error_rate={ERROR_RATE:g}", f"slow_api.extra_latency_s={EXTRA_LATENCY_S:g}")
NAIVE_ATTEMPTS = 4
NAIVE_EXPECTED = sum(ERROR_RATE**k for k in range(NAIVE_ATTEMPTS))
"""Attempts per call a naive policy of four tries makes when 80% of attempts fail: ~2.95."""
POOL_SHARE = 0.5
"""The naive storm may use at most half of the external client's connections: past them,
attempts queue for a connection (and time out there), and the figure would measure that queue
instead of the retry policy."""
NAIVE_MIN = 2.0
"""The issue's goals: naive amplification ≥ 2x, budgeted ≤ 1.2x."""
BUDGETED_MAX = 1.2
SETTLE_S = 5.0
TRANSITION_S = 2.0
"""Left out at the start of the storm: the breaker and the queues take a moment to react."""
DRAIN_S = 60.0
PRESETS = ("resilient", "fragile")


@dataclass(frozen=True)
class Timing:
    step_s: float
    storm_at_s: float
    storm_s: float

    def schedule(self) -> FaultSchedule:
        return FaultSchedule(
            tuple(
                parse_step(f"at {self.storm_at_s:g}s set {knob} for {self.storm_s:g}s")
                for knob in STORM
            )
        )


def timing(quick: bool, step_s: float | None) -> Timing:
    """Three flat stages: ~25 s before the storm, the storm, ~20 s after (quick: ~10/16/10)."""
    if quick:
        step = step_s or 12.0
        return Timing(step, storm_at_s=step + 1.0, storm_s=step + 4.0)
    step = step_s or 30.0
    return Timing(step, storm_at_s=step + 1.0, storm_s=step + 10.0)


def storm_rate(prediction: Prediction, quote_share: float) -> float:
    """``LOAD_SHARE`` of the predicted saturation, but low enough that the naive storm's attempts
    (:data:`NAIVE_EXPECTED` per quote, each :data:`EXTRA_LATENCY_S` slower) keep the external
    client's pool at most :data:`POOL_SHARE` busy (from the probe's external seconds)."""
    rate = LOAD_SHARE * prediction.saturation_rps
    pool = next((r for r in prediction.resources if r.name == "external_pool"), None)
    if pool is not None and pool.demand > 0 and quote_share > 0:
        per_quote_s = pool.demand / quote_share
        storm_s = quote_share * NAIVE_EXPECTED * (per_quote_s + EXTRA_LATENCY_S)
        rate = min(rate, POOL_SHARE * pool.capacity / storm_s)
    return round(rate, 1)


@dataclass(frozen=True)
class StormFigures:
    """One preset's storm: the amplification, the spill-over and the clients' goodput ratio."""

    amplification: Amplification | None
    spill: SpillOver | None
    goodput_before: float
    goodput_during: float

    def figures(self, preset: str) -> dict[str, float]:
        figures = {
            f"{preset}_goodput_ratio_before": self.goodput_before,
            f"{preset}_goodput_ratio_during": self.goodput_during,
        }
        if self.amplification is not None:
            figures |= self.amplification.figures(f"{preset}_")
        if self.spill is not None:
            figures |= self.spill.figures(f"{preset}_")
        return figures


def measure(phase: Phase) -> StormFigures | None:
    """The storm's figures of one phase; None when the phase has no load or no storm."""
    load = load_span(phase.timeline, phase.ended_at)
    storm = fault_span(phase.faults, phase.ended_at)
    if load is None or storm is None:
        return None
    before = (load[0] + SETTLE_S, storm[0])
    during = (storm[0] + TRANSITION_S, min(storm[1], load[1]))

    def goodput(span: tuple[float, float]) -> float:
        stats = window(phase.seconds, math.ceil(span[0]), math.floor(span[1]))
        return stats.goodput_rps / stats.offered_rps if stats.offered_rps else math.nan

    scrapes = phase.service_scrapes
    return StormFigures(
        amplification(scrapes, during),
        spill_over(scrapes, before, during),
        goodput(before),
        goodput(during),
    )


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value * 1000:.0f} ms"


def storm_verdict(naive: StormFigures | None, budgeted: StormFigures | None) -> Verdict:
    """Naive (fragile) amplification ≥ 2x and budgeted (resilient) ≤ 1.2x."""
    figures: dict[str, float] = {}
    for preset, measured in (("fragile", naive), ("resilient", budgeted)):
        if measured is not None:
            figures |= measured.figures(preset)
    if naive is None or budgeted is None or not naive.amplification or not budgeted.amplification:
        return Verdict(False, "no data", "No verdict: a phase had no load or no storm.", figures)
    high, low = naive.amplification.ratio, budgeted.amplification.ratio
    storm = high >= NAIVE_MIN
    contained = low <= BUDGETED_MAX
    spill = ""
    if naive.spill is not None:
        spill = (
            f" Item reads' p95 during the storm: fragile {_ms(naive.spill.p95_before_s)} →"
            f" {_ms(naive.spill.p95_during_s)}"
        )
        if budgeted.spill is not None:
            spill += (
                f", resilient {_ms(budgeted.spill.p95_before_s)} →"
                f" {_ms(budgeted.spill.p95_during_s)}"
            )
        spill += "."
    headline = (
        f"Naive retries sent {high:.2f} requests to the dependency per client request"
        f" (goal ≥ {NAIVE_MIN:g}), budgeted {low:.2f} (goal ≤ {BUDGETED_MAX:g}).{spill}"
    )
    if storm and contained:
        label = "storm shown"
    elif not storm and not contained:
        label = "no contrast"
    else:
        label = "no storm" if not storm else "budget leaked"
    return Verdict(storm and contained, label, headline, figures)


class RetryStorm:
    name = "retry-storm"
    description = (
        "a slow, failing external API with naive retries (fragile) vs budgeted retries and a"
        " breaker (resilient): retry amplification and spill-over onto item reads"
    )
    needs = StackNeeds()

    def run(self, ctx: ScenarioContext) -> ScenarioResult:
        clock = timing(ctx.options.quick, ctx.options.step_s)
        prediction = ctx.predict(MIX)
        predicted = prediction.saturation_rps
        rate = storm_rate(prediction, Mix(parse_weights(MIX)).shares()["quote"])
        config = ctx.flat_config(rate, clock.step_s, mix=MIX, client_retries="none")
        ctx.say(
            f"retry-storm: {rate:g} req/s flat (predicted saturation {predicted:.0f});"
            f" storm {', '.join(STORM)} for {clock.storm_s:g} s"
        )
        ctx.reset()
        phases: list[Phase] = []
        measured: dict[str, StormFigures | None] = {}
        for preset in PRESETS:
            ctx.set_preset(preset)
            phase = ctx.phase(preset, config, clock.schedule(), labels={"preset": preset})
            if preset != PRESETS[-1] or ctx.stack is None:  # our stack stops next: no need
                ctx.drain(timeout_s=DRAIN_S)
                ctx.reset()
            phases.append(phase)
            measured[preset] = storm = measure(phase)
            if storm is not None and storm.amplification is not None:
                ctx.say(
                    f"{preset}: amplification {storm.amplification.ratio:.2f},"
                    f" goodput {storm.goodput_before:.0%} → {storm.goodput_during:.0%}"
                    " of offered during the storm"
                )
        verdict = storm_verdict(measured["fragile"], measured["resilient"])
        figures = {**verdict.figures, "load_rps": rate, "predicted_rps": predicted}
        return ScenarioResult(
            self.name,
            self.description,
            Verdict(verdict.passed, verdict.label, verdict.headline, figures),
            phases,
            [f"storm: {', '.join(STORM)} for {clock.storm_s:g} s; generator retries off"],
        )


SCENARIO = RetryStorm()
