"""The verdicts of retry-storm, hidden-pressure-point and metastable on synthetic phases."""

from __future__ import annotations

import random

import pytest

from loadtests.capacity import Prediction, ResourceLimit
from loadtests.faults.runner import AppliedFault
from loadtests.runner import RampConfig
from loadtests.scenarios import hidden_pressure, metastable, retry_storm
from loadtests.scenarios.base import Phase, Verdict
from loadtests.scenarios.verdicts import Amplification, Bottleneck, SpillOver
from loadtests.series import Series

TRIGGER = "slow_api.extra_latency_s=0.2"


@pytest.mark.parametrize("module", [metastable, retry_storm, hidden_pressure])
@pytest.mark.parametrize("quick", [True, False])
def test_every_schedule_parses_and_fits_inside_the_load(module: object, quick: bool) -> None:
    clock = module.timing(quick, None)  # type: ignore[attr-defined]
    events = clock.schedule().events()
    assert events
    assert all(0 < at < 3 * clock.step_s for at, _, _ in events)
    assert module.timing(quick, 50.0).step_s == 50.0  # type: ignore[attr-defined]


# --- metastable -------------------------------------------------------------------------------


def _phase(stuck: bool, trigger: tuple[float, float] = (1030.0, 1040.0)) -> Phase:
    """100 s of load from t=1000: healthy, the trigger, then stuck (every request times out)."""
    rng = random.Random(3)
    series = Series(slo_s=0.5)
    for second in range(1000, 1100):
        bad = trigger[0] <= second < (1100 if stuck else trigger[1] + 3)
        for i in range(50):
            started = second + i / 50
            series.arrival(started)
            if bad:
                for _ in range(3):
                    series.retry(started)
            latency = 4.0 if bad else rng.uniform(0.04, 0.06)
            series.completion(started, latency, "timeout" if bad else None)
    timeline = [
        {"index": 0, "name": "average 1/3", "rps": 50.0, "start": 1000.0},
        {"index": 3, "name": "drain", "rps": 0.0, "start": 1100.0},
    ]
    faults = [
        AppliedFault(trigger[0], 31.0, "apply", TRIGGER, True),
        AppliedFault(trigger[1], 41.0, "undo", TRIGGER, True),
    ]
    return Phase("p", [], series.seconds, [], faults, 998.0, RampConfig(), 1106.0,
                 timeline=timeline)  # fmt: skip


def test_a_trial_is_judged_from_its_own_trigger_and_load() -> None:
    recovered = metastable.judge_trial(_phase(stuck=False), 30, 30.0)
    assert recovered.label == "recovered"
    assert recovered.figures["time_to_recover_s"] == 3
    assert recovered.figures["trigger_s"] == 10
    stuck = metastable.judge_trial(_phase(stuck=True), 30, None)
    assert stuck.label == "stuck"
    assert stuck.figures["retries_per_arrival_after"] == 3


def test_a_trial_without_a_trigger_has_no_verdict() -> None:
    phase = _phase(stuck=False)
    failed = [AppliedFault(1030.0, 31.0, "apply", TRIGGER, False, "HTTPError: refused")]
    no_trigger = Phase("p", [], phase.seconds, [], failed, 998.0, RampConfig(), 1106.0,
                       timeline=phase.timeline)  # fmt: skip
    assert metastable.judge_trial(no_trigger, 30, None).label == "no data"


def _trials(stuck: int, recovered: int, runs: int = 5) -> dict[str, list[Verdict]]:
    def verdict(label: str, seconds: float | None = None) -> Verdict:
        figures = {} if seconds is None else {"time_to_recover_s": seconds}
        return Verdict(label == "recovered", label, "", figures)

    return {
        "fragile": [verdict("stuck")] * stuck + [verdict("recovered", 40.0)] * (runs - stuck),
        "resilient": [verdict("recovered", float(5 + i)) for i in range(recovered)]
        + [verdict("recovered late", 45.0)] * (runs - recovered),
    }


def test_metastable_needs_four_of_five_each_way() -> None:
    shown = metastable.overall_verdict(_trials(stuck=4, recovered=5))
    assert shown.passed
    assert shown.label == "contrast shown"
    assert shown.figures["fragile_stuck"] == 4
    assert shown.figures["resilient_median_time_to_recover_s"] == 7  # 5..9: not the late ones
    assert "4 of 5" in shown.headline
    assert metastable.overall_verdict(_trials(stuck=3, recovered=5)).label == "fragile recovered"
    assert metastable.overall_verdict(_trials(stuck=5, recovered=3)).label == "resilient stuck"
    assert metastable.overall_verdict(_trials(stuck=1, recovered=1)).label == "no contrast"


def test_one_trial_must_show_both() -> None:
    assert metastable.overall_verdict(_trials(stuck=1, recovered=1, runs=1)).passed
    assert not metastable.overall_verdict(_trials(stuck=0, recovered=1, runs=1)).passed


# --- retry-storm ------------------------------------------------------------------------------


def _storm(ratio: float) -> retry_storm.StormFigures:
    amp = Amplification(client_requests=100, calls=100, attempts=100 * ratio,
                        reached=100 * ratio, refused=0)  # fmt: skip
    spill = SpillOver("/items/{item_id}", 0.004, 0.012, 0.0, 0.0)
    return retry_storm.StormFigures(amp, spill, 1.0, 0.3)


def test_storm_shown_when_naive_amplifies_and_budgeted_does_not() -> None:
    verdict = retry_storm.storm_verdict(_storm(2.5), _storm(0.4))
    assert verdict.passed
    assert verdict.label == "storm shown"
    assert verdict.figures["fragile_amplification"] == 2.5
    assert verdict.figures["resilient_amplification"] == 0.4
    assert verdict.figures["fragile_reads_p95_ratio"] == pytest.approx(3)
    assert "2.50" in verdict.headline
    assert "4 ms → 12 ms" in verdict.headline


def _prediction(saturation_rps: float, external_s: float) -> Prediction:
    cpu = ResourceLimit("cpu", 1.0, "core", 1 / saturation_rps, "s", saturation_rps)
    pool = ResourceLimit("external_pool", 10.0, "connections", external_s, "s", 10 / external_s)
    return Prediction((pool, cpu))


def test_the_storm_rate_keeps_the_naive_storm_inside_the_external_pool() -> None:
    # 30% quotes of 40 ms each: 0.012 s of external pool per request at rest.
    roomy = retry_storm.storm_rate(_prediction(200.0, 0.012), 0.3)
    assert roomy == 50.0  # a quarter of the CPU's 200 req/s: the pool has room
    busy = retry_storm.storm_rate(_prediction(600.0, 0.012), 0.3)
    storm_s = 0.3 * retry_storm.NAIVE_EXPECTED * (0.04 + retry_storm.EXTRA_LATENCY_S)
    assert busy == pytest.approx(retry_storm.POOL_SHARE * 10 / storm_s, abs=0.1)
    assert busy < 0.25 * 600
    attempts_per_call = retry_storm.NAIVE_EXPECTED  # 1 + 0.8 + 0.8**2 + 0.8**3
    assert attempts_per_call == pytest.approx(2.952)


def test_storm_verdict_says_which_goal_missed() -> None:
    assert retry_storm.storm_verdict(_storm(1.8), _storm(1.0)).label == "no storm"
    assert retry_storm.storm_verdict(_storm(2.5), _storm(1.5)).label == "budget leaked"
    assert retry_storm.storm_verdict(_storm(1.5), _storm(1.5)).label == "no contrast"
    assert retry_storm.storm_verdict(None, _storm(1.0)).label == "no data"


# --- hidden-pressure-point --------------------------------------------------------------------


def _found(resource: str, cpu: float, locks: bool = True) -> Bottleneck:
    evidence = {"cpu_utilisation": cpu, "pool_utilisation": 1.0}
    if locks:
        evidence |= {"lock_wait_s_per_s": 3.8, "blocked_backends": 3.8}
    return Bottleneck(resource, f"{resource} explained", evidence)


def test_the_row_lock_must_be_named_with_the_cpu_low() -> None:
    verdict = hidden_pressure.pressure_verdict(
        _found("none", 0.1), _found("row-lock wait", 0.2), (0.01, 2.5)
    )
    assert verdict.passed
    assert verdict.label == "row-lock wait named"
    assert verdict.figures["during_blocked_backends"] == 3.8
    assert verdict.figures["orders_p95_during_s"] == 2.5
    assert "10 ms to 2500 ms" in verdict.headline


def test_other_names_fail_and_say_why() -> None:
    busy = hidden_pressure.pressure_verdict(None, _found("row-lock wait", 0.9), (None, None))
    assert busy.label == "cpu busy too"
    pool = hidden_pressure.pressure_verdict(None, _found("db pool", 0.2, locks=False), (1, 2))
    assert pool.label == "named db pool"
    assert "No Postgres exporter" in pool.headline
    assert hidden_pressure.pressure_verdict(None, None, (None, None)).label == "no data"
