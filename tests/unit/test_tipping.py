"""Onset, knee and collapse on synthetic ramps with a known tipping point."""

from __future__ import annotations

import random
from dataclasses import replace

import pytest

from loadtests.tipping import (
    AbortRule,
    abort_reason,
    baseline_p50,
    by_load,
    collapse,
    find_tipping_point,
    goodput_share,
    knee,
    onset,
    ramp_up,
    should_abort,
)
from tests.unit.synthetic import COLLAPSE, KNEE, ONSET, SLO_S, STEPS, hockey, stage


def _rps(found: object) -> float | None:
    return getattr(found, "target_rps", None)


def test_hockey_stick_lands_where_it_must() -> None:
    stages = hockey()
    assert _rps(onset(stages)) == ONSET
    assert _rps(knee(stages, SLO_S)) == KNEE
    assert _rps(collapse(stages)) == COLLAPSE


@pytest.mark.parametrize("seed", range(20))
def test_noisy_curves_land_in_the_same_places(seed: int) -> None:
    stages = hockey(noise=0.08, seed=seed)
    assert _rps(onset(stages)) == ONSET
    assert _rps(knee(stages, SLO_S)) == KNEE
    assert _rps(collapse(stages)) == COLLAPSE


def test_empty_ramp_finds_nothing() -> None:
    assert onset([]) is None
    assert knee([], SLO_S) is None
    assert collapse([]) is None
    point = find_tipping_point([], SLO_S)
    assert (point.onset_rps, point.knee_rps, point.collapse_rps) == (None, None, None)
    assert not point.knee_is_lower_bound
    assert point.explanation == "no stages"
    assert not should_abort([], SLO_S)


def test_single_healthy_stage_is_its_own_knee_and_nothing_else() -> None:
    only = [stage(0, 100)]
    assert onset(only) is None
    assert knee(only, SLO_S) == only[0]
    assert collapse(only) is None
    assert find_tipping_point(only, SLO_S).knee_is_lower_bound


def test_single_failing_stage_has_no_knee() -> None:
    only = [stage(0, 100, p95_s=0.9)]
    assert knee(only, SLO_S) is None
    assert "even the lowest load fails" in find_tipping_point(only, SLO_S).explanation


def test_never_saturating_ramp_reports_the_top_as_a_lower_bound() -> None:
    stages = hockey(range(20, 140, 20))
    point = find_tipping_point(stages, SLO_S)
    assert (point.onset_rps, point.collapse_rps) == (None, None)
    assert point.knee_rps == 120
    assert point.knee_is_lower_bound
    assert "no knee reached" in point.explanation


def test_onset_ignores_a_fluke_at_low_load() -> None:
    stages = hockey()
    stages[2] = replace(stages[2], p50_s=0.2)  # one GC pause at 60 req/s
    assert _rps(onset(stages)) == ONSET


def test_onset_counts_a_stage_with_no_latency_as_climbed() -> None:
    stages = [stage(0, 10), stage(1, 20), stage(2, 30, p50_s=None, goodput=0)]
    assert _rps(onset(stages)) == 30


def test_baseline_is_the_median_of_the_lowest_load_stages() -> None:
    stages = [stage(2, 30, p50_s=0.05), stage(0, 10, p50_s=0.01), stage(1, 20, p50_s=0.03)]
    assert baseline_p50(stages) == pytest.approx(0.02)
    assert baseline_p50(stages, baseline_stages=1) == 0.01
    assert baseline_p50([stage(0, 10, p50_s=None)]) is None


def test_knee_fails_on_goodput_as_well_as_latency() -> None:
    stages = [stage(0, 100), stage(1, 150), stage(2, 200, goodput=180)]  # 90% < 95%
    point = find_tipping_point(stages, SLO_S)
    assert point.knee_rps == 150
    assert point.explanation.startswith("knee at 150 req/s: at 200 req/s goodput 90%")


def test_knee_explanation_names_the_failing_stage() -> None:
    stages = [stage(0, 190, p95_s=0.3), stage(1, 200, p95_s=0.61)]
    explanation = find_tipping_point(stages, SLO_S).explanation
    assert explanation == "knee at 190 req/s: at 200 req/s p95 0.61 s > SLO 0.5 s"


def test_a_fluke_pass_after_collapse_is_not_a_knee() -> None:
    stages = hockey()
    fluke = next(i for i, s in enumerate(stages) if s.target_rps == 260)
    stages[fluke] = stage(fluke, 260, p95_s=0.1)
    assert _rps(knee(stages, SLO_S)) == KNEE


def test_dropped_arrivals_count_against_goodput() -> None:
    capped = stage(1, 200, offered=150, goodput=150, dropped=50)
    assert capped.goodput_ratio == 1.0  # the sample's own ratio ignores drops
    assert goodput_share(capped) == 0.75
    assert _rps(knee([stage(0, 100), capped], SLO_S)) == 100
    assert goodput_share(stage(0, 0, offered=0, goodput=0)) == 1.0


def test_stage_order_does_not_matter() -> None:
    stages = hockey(noise=0.05, seed=3)
    shuffled = list(stages)
    random.Random(7).shuffle(shuffled)
    assert find_tipping_point(shuffled, SLO_S) == find_tipping_point(stages, SLO_S)


def test_load_order_follows_the_target_not_a_sagging_offered_rate() -> None:
    stages = [stage(0, 300, offered=290), stage(1, 400, offered=250), stage(2, 100)]
    assert [s.target_rps for s in by_load(stages)] == [100, 300, 400]


def test_ramp_and_recover_that_recovers_changes_nothing() -> None:
    rates = [*STEPS, 200.0, 100.0, 40.0]
    assert find_tipping_point(hockey(rates), SLO_S) == find_tipping_point(hockey(), SLO_S)


def test_repeated_level_fails_as_a_whole() -> None:
    stages = [stage(0, 100), stage(1, 150), stage(2, 200), stage(3, 150, p95_s=0.8)]
    assert _rps(knee(stages, SLO_S)) == 100


def test_stuck_recovery_pulls_the_knee_down_unless_only_the_ramp_up_is_judged() -> None:
    stages = [*hockey(), stage(len(STEPS), 100, p50_s=1.0, p95_s=2.0, goodput=0)]
    assert _rps(knee(stages, SLO_S)) == 80
    up = ramp_up(stages)
    assert [s.target_rps for s in up] == STEPS
    assert _rps(knee(up, SLO_S)) == KNEE


def test_ramp_up_stops_at_the_first_visit_of_the_peak() -> None:
    stages = [stage(0, 100), stage(1, 300), stage(2, 200), stage(3, 300)]
    assert [s.index for s in ramp_up(stages)] == [0, 1]
    assert ramp_up([]) == []


def test_collapse_needs_rising_load() -> None:
    # Goodput falls on the way back down: not a collapse.
    down = [stage(0, 300, goodput=290), stage(1, 200, goodput=200), stage(2, 100)]
    assert collapse(down) is None
    # A repeat at the same load with less goodput: load did not rise.
    repeat = [stage(0, 100), stage(1, 200), stage(2, 200, goodput=100)]
    assert collapse(repeat) is None


def test_collapse_compares_with_the_best_lower_level_not_just_the_previous() -> None:
    # Goodput slides 6% per step: no single step drops 10%, the slide from the peak does.
    goodputs = [100.0, 200.0, 188.0, 177.0, 166.0]
    stages = [stage(i, 100.0 * (i + 1), goodput=g) for i, g in enumerate(goodputs)]
    assert _rps(collapse(stages)) == 400
    assert _rps(collapse(stages, drop=0.2)) is None


def test_tipping_point_reports_offered_rates_and_stage_indices() -> None:
    point = find_tipping_point(hockey(), SLO_S)
    assert (point.onset_rps, point.knee_rps, point.collapse_rps) == (ONSET, KNEE, COLLAPSE)
    assert (point.onset_index, point.knee_index, point.collapse_index) == (7, 8, 10)
    assert "onset at 160 req/s" in point.explanation
    assert "collapse at 220 req/s (goodput 160/s, down from 200/s at 200 req/s)" in (
        point.explanation
    )


def test_should_abort_once_collapse_is_reached_live() -> None:
    stages = hockey()
    verdicts = [should_abort(stages[: n + 1], SLO_S) for n in range(len(stages))]
    first = verdicts.index(True)
    assert stages[first].target_rps == COLLAPSE
    assert all(verdicts[first:])


def test_should_abort_after_consecutive_failing_stages() -> None:
    low = [stage(0, 100), stage(1, 150, goodput=60), stage(2, 150, goodput=60)]
    assert should_abort(low, SLO_S)
    reason = abort_reason(low, SLO_S, AbortRule(collapse_drop=1.0))
    assert reason == "2 stages in a row below 50% goodput or with p50 over the 0.5 s SLO"
    assert not should_abort(low[:2], SLO_S, AbortRule(collapse_drop=1.0))
    assert not should_abort(low, SLO_S, AbortRule(consecutive=3, collapse_drop=1.0))


def test_should_abort_counts_slow_stages_and_resets_on_a_good_one() -> None:
    rule = AbortRule(collapse_drop=1.0)
    slow = stage(1, 100, p50_s=0.8, p95_s=1.0)
    assert should_abort([stage(0, 100), slow, slow], SLO_S, rule)
    assert not should_abort([slow, stage(2, 100), slow], SLO_S, rule)
    assert not should_abort([slow, slow], SLO_S, AbortRule(consecutive=0, collapse_drop=1.0))


def test_healthy_ramp_never_aborts() -> None:
    stages = hockey(range(20, 200, 20), noise=0.08, seed=1)
    assert not any(should_abort(stages[: n + 1], SLO_S) for n in range(len(stages)))
