"""``average-vs-peak``: a service sized for the average tips over at the peak.

Probe, predict the saturation throughput, then hold the load flat at half of it (an ordinary
day) and then flat at 1.2 times it (the busy hour). The lesson shows when the average is served
well — goodput ≥ 95% of the offered load and p95 within the SLO — and the peak is not: capacity
planned on averages fails on the day that matters.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from loadtests.samples import StageSample
from loadtests.scenarios.base import (
    LOW_KNEE_SETTINGS,
    ScenarioResult,
    StackNeeds,
    Verdict,
    combined,
    healthy,
)
from loadtests.scenarios.context import ScenarioContext

AVERAGE_FACTOR = 0.5
"""The average load, as a share of the predicted saturation throughput."""
PEAK_FACTOR = 1.2
"""The peak load, as a multiple of the predicted saturation throughput."""
CLIENT_TIMEOUT_S = 2.0
"""Short enough that the drain after each phase is short; far above the SLO."""


def _ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1000:.0f} ms"


def verdict(average: StageSample | None, peak: StageSample | None, slo_s: float) -> Verdict:
    """``tipped at peak`` when the average phase is healthy and the peak phase is not."""
    if average is None or peak is None:
        return Verdict(False, "no data", "a phase produced no measured stage")
    figures = {
        "average_offered_rps": average.offered_rps,
        "average_p95_s": average.p95_s if average.p95_s is not None else float("nan"),
        "average_goodput_ratio": average.goodput_ratio,
        "peak_offered_rps": peak.offered_rps,
        "peak_p95_s": peak.p95_s if peak.p95_s is not None else float("nan"),
        "peak_goodput_ratio": peak.goodput_ratio,
    }
    numbers = (
        f"average {average.offered_rps:.0f} req/s: goodput {average.goodput_ratio:.0%}, "
        f"p95 {_ms(average.p95_s)}; peak {peak.offered_rps:.0f} req/s: goodput "
        f"{peak.goodput_ratio:.0%}, p95 {_ms(peak.p95_s)} (SLO {_ms(slo_s)})"
    )
    if not healthy(average, slo_s):
        return Verdict(False, "unhealthy at average", f"Even the average hurts: {numbers}.",
                       figures)  # fmt: skip
    if healthy(peak, slo_s):
        return Verdict(False, "held at peak", f"The peak was served well too: {numbers}.",
                       figures)  # fmt: skip
    headline = f"Healthy at the average, tipped at the peak: {numbers}."
    return Verdict(True, "tipped at peak", headline, figures)


@dataclass(frozen=True)
class AverageVsPeak:
    name: str = "average-vs-peak"
    description: str = (
        "Flat at the average load (0.5x the predicted saturation), then flat at the peak "
        "(1.2x): healthy at the average, tipped at the peak."
    )
    needs: StackNeeds = field(default_factory=lambda: StackNeeds(settings=LOW_KNEE_SETTINGS))

    def run(self, ctx: ScenarioContext) -> ScenarioResult:
        predicted = ctx.predict().saturation_rps
        step_s = ctx.options.step(20.0, 4.0)
        phases = []
        for phase_name, factor in (("average", AVERAGE_FACTOR), ("peak", PEAK_FACTOR)):
            rate = round(factor * predicted, 1)
            config = ctx.flat_config(rate, step_s, timeout_s=CLIENT_TIMEOUT_S)
            phases.append(ctx.phase(phase_name, config))
            ctx.drain()
        result = verdict(combined(phases[0].stages), combined(phases[1].stages), ctx.options.slo_s)
        notes = [
            f"Predicted saturation {predicted:.0f} req/s; average = {AVERAGE_FACTOR:g}x, "
            f"peak = {PEAK_FACTOR:g}x of it. Each phase: 3 stages of {step_s:g} s; figures "
            "are over all three (p95: window-weighted mean of the stages' p95)."
        ]
        return ScenarioResult(self.name, self.description, result, phases, notes)


SCENARIO = AverageVsPeak()
