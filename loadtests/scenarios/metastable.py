"""``metastable``: near capacity, a short trigger, the trigger gone, the load unchanged — and then?

The lesson (FIELD-NOTES.md, "Metastable failure: reproduced"): a system that keeps up at half to
three quarters of its capacity can be tipped by a few seconds of a slower dependency into a state
it never leaves once the trigger is gone. Clients time out at ~1 s and retry at once; the fragile
service queues without bound and finishes every abandoned request anyway, so it works flat out
for clients who have left, each new arrival comes back as up to four, and the retried load stays
above capacity: a goodput collapse, not a throughput collapse. The resilient preset fails fast
instead (admission limit, the dependency's bulkhead, per-attempt deadlines, a breaker), so its
queues stay short, answers come back inside the client's timeout, the retries stop and it
recovers.

Each trial runs the same flat load and the same trigger (``slow_api.extra_latency_s=0.2`` for
10 s) once per preset; :func:`~loadtests.scenarios.verdicts.recovery_verdict` judges it.
``--repeat N`` runs N trials; the verdict wants fragile stuck and resilient recovered within 30 s
in at least 4 of 5 (80%) of them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from loadtests.faults.spec import FaultSchedule, parse_step
from loadtests.scenarios.base import Phase, ScenarioResult, StackNeeds, Verdict
from loadtests.scenarios.context import ScenarioContext
from loadtests.scenarios.verdicts import fault_span, load_span, recovery_verdict, repeat_summary
from loadtests.series import totals

MIX = "item=1,quote=3"
"""Most requests call the slow API, so its slowdown reaches the service's queue."""
SETTINGS = {
    "BRINK_SLOW_API__BASE_LATENCY_S": "0.05",
    "BRINK_EXTERNAL__MAX_CONNECTIONS": "5",
    "BRINK_EXTERNAL__MAX_KEEPALIVE": "5",
}
"""The external client's pool is the bottleneck (5 connections x ~57 ms ≈ 90 quotes/s): a limit
set by sleeps, not by CPU or Postgres, so the load's share of it holds on a busy 2-core box."""
LOAD_SHARE = 0.5
"""The flat load as a share of the predicted saturation. Served comfortably before the trigger,
with little queueing, so the baseline p50 the recovery is judged against is steady; and still
stuck-prone: a naive client's four attempts per arrival are twice the capacity (FIELD-NOTES:
stuck while 4 x load > capacity)."""
TRIGGER = "slow_api.extra_latency_s=0.2"
CLIENT_TIMEOUT_S = 1.0
RECOVER_WITHIN_S = 30.0
"""The issue's goal for the resilient preset."""
REQUIRED_SHARE = 0.8
"""Share of the trials that must show the lesson: 4 of 5."""
DRAIN_S = 60.0
PRESETS = ("resilient", "fragile")
"""Resilient first: a stuck fragile service leaves a backlog the next phase should not inherit."""
_TRIAL_FIGURES = (
    "baseline_p50_s",
    "final_p50_s",
    "final_goodput_ratio",
    "retries_per_arrival_after",
    "time_to_recover_s",
)
"""The first trial's figures the overall verdict carries, per preset."""


@dataclass(frozen=True)
class Timing:
    """One trial's clock: three flat stages of ``step_s``, the trigger after a baseline."""

    step_s: float
    trigger_at_s: float
    """Seconds after the phase starts (Locust starts a second or two later)."""
    trigger_s: float
    window_s: int
    """The recovery window; the issue's 30 s, shorter in ``--quick``."""
    settle_s: float = 5.0
    """Left out of the baseline at the start of the load."""

    def schedule(self) -> FaultSchedule:
        step = f"at {self.trigger_at_s:g}s set {TRIGGER} for {self.trigger_s:g}s"
        return FaultSchedule((parse_step(step),))


def timing(quick: bool, step_s: float | None) -> Timing:
    """Normal: 3 x 35 s (baseline ~25 s, trigger 10 s, 65 s after, a 30 s window). Quick (CI):
    3 x 12 s, baseline ~7 s, a 4 s trigger (FIELD-NOTES: half a second already sticks), 20 s
    after and a 10 s window — the contrast shows, the figures are rougher."""
    if quick:
        step = step_s or 12.0
        return Timing(step, trigger_at_s=step + 1.0, trigger_s=4.0, window_s=10, settle_s=3.0)
    step = step_s or 35.0
    return Timing(step, trigger_at_s=step - 4.0, trigger_s=10.0, window_s=30)


def judge_trial(
    phase: Phase, window_s: int, within_s: float | None, settle_s: float = 5.0
) -> Verdict:
    """Recovered or stuck, for one phase; baseline from the load's start to the trigger."""
    load = load_span(phase.timeline, phase.ended_at)
    trigger = fault_span(phase.faults, phase.ended_at)
    if load is None or trigger is None:
        why = "the load generator recorded no stage" if load is None else "no trigger applied"
        return Verdict(False, "no data", f"No verdict: {why}.")
    verdict = recovery_verdict(
        phase.seconds,
        trigger[1],
        (load[0] + settle_s, trigger[0]),
        load[1],
        window_s=window_s,
        within_s=within_s,
    )
    after = totals(second for key, second in phase.seconds.items() if trigger[1] <= key < load[1])
    figures = dict(verdict.figures)
    figures["trigger_s"] = trigger[1] - trigger[0]
    if after.arrivals:
        figures["retries_per_arrival_after"] = after.retries / after.arrivals
    return Verdict(verdict.passed, verdict.label, verdict.headline, figures)


def overall_verdict(trials: Mapping[str, Sequence[Verdict]]) -> Verdict:
    """Fragile stuck and resilient recovered within 30 s, each in ≥ 80% of the trials."""
    fragile, resilient = trials.get("fragile", ()), trials.get("resilient", ())
    runs = max(len(fragile), len(resilient))
    needed = max(1, math.ceil(REQUIRED_SHARE * runs))
    stuck, _ = repeat_summary(fragile, "stuck")
    recovered, median = repeat_summary(resilient, "recovered")
    figures: dict[str, float] = {
        "trials": float(runs),
        "fragile_stuck": float(stuck),
        "resilient_recovered": float(recovered),
    }
    if median is not None:
        figures["resilient_median_time_to_recover_s"] = median
    for preset, verdicts in trials.items():
        if verdicts:
            for key in _TRIAL_FIGURES:
                if key in verdicts[0].figures:
                    figures[f"{preset}_{key}"] = verdicts[0].figures[key]
    shown = stuck >= needed and recovered >= needed
    recovery = "" if median is None else f" (median {median:.0f} s to recover)"
    headline = (
        f"Fragile stuck in {stuck} of {runs}, resilient recovered within"
        f" {RECOVER_WITHIN_S:.0f} s in {recovered} of {runs}{recovery}; needed {needed} of {runs}."
    )
    if shown:
        label = "contrast shown"
    elif stuck < needed and recovered < needed:
        label = "no contrast"
    else:
        label = "fragile recovered" if stuck < needed else "resilient stuck"
    return Verdict(shown, label, headline, figures)


class Metastable:
    name = "metastable"
    description = (
        "near-capacity flat load, a short dependency slowdown, then the same load: the fragile"
        " preset stays stuck, the resilient one recovers"
    )
    needs = StackNeeds(settings=SETTINGS)

    def run(self, ctx: ScenarioContext) -> ScenarioResult:
        options = ctx.options
        clock = timing(options.quick, options.step_s)
        predicted = ctx.predict(MIX).saturation_rps
        rate = round(LOAD_SHARE * predicted, 1)
        config = ctx.flat_config(
            rate, clock.step_s, timeout_s=CLIENT_TIMEOUT_S, client_retries="naive", mix=MIX
        )
        ctx.say(
            f"metastable: {rate:g} req/s flat ({LOAD_SHARE:.0%} of the predicted"
            f" {predicted:.0f}), {TRIGGER} for {clock.trigger_s:g} s,"
            f" {options.repeat} trial(s) per preset"
        )
        phases: list[Phase] = []
        trials: dict[str, list[Verdict]] = {preset: [] for preset in PRESETS}
        ctx.reset()
        for trial in range(1, options.repeat + 1):
            for preset in PRESETS:
                ctx.set_preset(preset)
                phase = ctx.phase(
                    f"{preset}-{trial}",
                    config,
                    clock.schedule(),
                    labels={"preset": preset, "trial": str(trial)},
                )
                last = trial == options.repeat and preset == PRESETS[-1]
                if not (last and ctx.stack is not None):  # our stack stops next: no need
                    # A stuck fragile service works off its backlog for a while after the load
                    # stops (up to the client pool's 10 s timeout): let it, then put it back.
                    ctx.drain(timeout_s=DRAIN_S)
                    ctx.reset()
                within = RECOVER_WITHIN_S if preset == "resilient" else None
                verdict = judge_trial(phase, clock.window_s, within, clock.settle_s)
                ctx.say(f"{preset} trial {trial}: {verdict.label.upper()} — {verdict.headline}")
                phases.append(phase)
                trials[preset].append(verdict)
        notes = [
            f"{preset} trial {i}: {v.label} — {v.headline}"
            for preset, verdicts in trials.items()
            for i, v in enumerate(verdicts, 1)
        ]
        verdict = overall_verdict(trials)
        figures = {**verdict.figures, "load_rps": rate, "predicted_rps": predicted}
        return ScenarioResult(
            self.name,
            self.description,
            Verdict(verdict.passed, verdict.label, verdict.headline, figures),
            phases,
            notes,
        )


SCENARIO = Metastable()
