"""``tipping-point``: a slow ramp through the knee, and what piles up past it.

Steps from half the predicted saturation throughput to 1.5 times it. Below the knee, the work in
the service grows with the load; past it the service cannot finish faster, so every extra
request waits: requests in flight and DB pool waiters grow much faster than the load while
goodput falls (Little's law: in flight = throughput x time in system, and time in system is
what grows). The verdict names the knee (:func:`loadtests.tipping.find_tipping_point`) and
compares the growth across it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from loadtests.samples import StageSample
from loadtests.scenarios.base import LOW_KNEE_SETTINGS, ScenarioResult, StackNeeds, Verdict, ratio
from loadtests.scenarios.context import ScenarioContext
from loadtests.tipping import by_load, find_tipping_point, goodput_share

START_FACTOR = 0.5
END_FACTOR = 1.5
CLIENT_TIMEOUT_S = 2.0
WAITERS_FLOOR = 0.05
"""Mean pool waiters at the knee are often ~0: growth is measured from at least this, so a
ratio stays finite and a pile-up from nothing still counts as growth."""


def _growth(after: float, before: float, floor: float = 0.0) -> float:
    return ratio(after, max(before, floor))


def verdict(stages: list[StageSample], slo_s: float) -> Verdict:
    """``knee found`` when in-flight and pool waiters grow faster than load past the knee
    while the goodput share falls.

    Across the knee means from the knee stage (the highest load still served well) to the
    highest-load stage measured past it.
    """
    tip = find_tipping_point(stages, slo_s)
    knee = next((s for s in stages if s.index == tip.knee_index), None)
    if knee is None:
        return Verdict(False, "no knee", tip.explanation)
    past = [s for s in by_load(stages) if s.target_rps > knee.target_rps]
    if tip.knee_is_lower_bound or not past:
        return Verdict(False, "knee not reached", tip.explanation, {"knee_rps": knee.offered_rps})
    after = past[-1]
    if knee.server is None or after.server is None:
        return Verdict(False, "no server data", f"{tip.explanation}; the service was not scraped",
                       {"knee_rps": knee.offered_rps})  # fmt: skip
    load = ratio(after.offered_rps, knee.offered_rps)
    in_flight = _growth(after.server.in_flight, knee.server.in_flight)
    waiters = _growth(after.server.pool_waiters, knee.server.pool_waiters, WAITERS_FLOOR)
    figures = {
        "knee_rps": knee.offered_rps,
        "knee_goodput_rps": knee.goodput_rps,
        "past_knee_rps": after.offered_rps,
        "load_ratio": load,
        "in_flight_at_knee": knee.server.in_flight,
        "in_flight_past_knee": after.server.in_flight,
        "in_flight_growth": in_flight,
        "pool_waiters_at_knee": knee.server.pool_waiters,
        "pool_waiters_past_knee": after.server.pool_waiters,
        "pool_waiters_growth": waiters,
        "goodput_share_at_knee": goodput_share(knee),
        "goodput_share_past_knee": goodput_share(after),
    }
    piles_up = in_flight > load and waiters > load
    falls = goodput_share(after) < goodput_share(knee)
    numbers = (
        f"from the knee at {knee.offered_rps:.0f} req/s to {after.offered_rps:.0f} req/s "
        f"(load x{load:.2f}), in flight grew x{in_flight:.1f} "
        f"({knee.server.in_flight:.1f} → {after.server.in_flight:.1f}) and pool waiters "
        f"x{waiters:.1f} ({knee.server.pool_waiters:.2f} → {after.server.pool_waiters:.2f}); "
        f"goodput share {goodput_share(knee):.0%} → {goodput_share(after):.0%}"
    )
    if not (piles_up and falls) or math.isnan(load):
        return Verdict(False, "no pile-up", f"Past the knee nothing piled up: {numbers}.", figures)
    return Verdict(True, "knee found", f"Tipped: {numbers}.", figures)


@dataclass(frozen=True)
class TippingPointScenario:
    name: str = "tipping-point"
    description: str = (
        "A slow ramp from 0.5x to 1.5x the predicted saturation: the knee, and in-flight "
        "requests and pool waiters growing faster than the load past it while goodput falls."
    )
    needs: StackNeeds = field(default_factory=lambda: StackNeeds(settings=LOW_KNEE_SETTINGS))

    def run(self, ctx: ScenarioContext) -> ScenarioResult:
        predicted = ctx.predict().saturation_rps
        step_s = ctx.options.step(20.0, 5.0)
        increment = 0.2 if ctx.options.quick else 0.1
        stages = round((END_FACTOR - START_FACTOR) / increment) + 1
        # breakpoint adds 0.1 x peak per step: peak = 10 x the increment wanted; the number of
        # steps (and so the top rate) is bounded by the duration cap.
        config = ctx.ramp_config(
            profile="breakpoint",
            average_rps=round(START_FACTOR * predicted, 1),
            peak_rps=round(10 * increment * predicted, 1),
            step_s=step_s,
            duration_cap_s=stages * step_s,
            timeout_s=CLIENT_TIMEOUT_S,
            abort_on_collapse=True,
        )
        phase = ctx.phase("ramp", config)
        result = verdict(phase.stages, ctx.options.slo_s)
        notes = [
            f"Predicted saturation {predicted:.0f} req/s; {stages} steps of {step_s:g} s from "
            f"{START_FACTOR:g}x to {END_FACTOR:g}x of it, stopped early once goodput collapsed.",
            "In flight and pool waiters are means over each stage's window, from the service's "
            "busy-seconds counters (not sampled gauges).",
        ]
        return ScenarioResult(self.name, self.description, result, [phase], notes)


SCENARIO = TippingPointScenario()
