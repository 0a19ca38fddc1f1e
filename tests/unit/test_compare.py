"""Run-over-run comparison: verdicts at and past each tolerance."""

from __future__ import annotations

from dataclasses import replace

import pytest

from loadtests.box_speed import BoxSpeed
from loadtests.compare import Tolerances, compare, speed_note
from loadtests.exit_codes import ExitCode
from loadtests.summary import RunSummary

BASELINE = RunSummary(
    knee_rps=200.0,
    onset_rps=170.0,
    collapse_rps=260.0,
    predicted_rps=194.0,
    knee_error_ratio=0.03,
    p95_at_average_ms=50.0,
    p99_at_average_ms=90.0,
    error_rate_at_average=0.001,
    goodput_ratio_at_peak=0.4,
    max_offered_rps=300.0,
    dropped_ratio=0.0,
)


def _ok(metric: str, **changes: float) -> bool:
    rows = compare(BASELINE, replace(BASELINE, **changes)).rows
    return next(r.ok for r in rows if r.metric == metric)


def test_an_identical_run_does_not_regress() -> None:
    result = compare(BASELINE, BASELINE)
    assert [r.metric for r in result.rows] == [
        "knee_rps",
        "p95_at_average_ms",
        "error_rate_at_average",
    ]
    assert all(r.ok for r in result.rows)
    assert [r.change_pct for r in result.rows] == [0.0, 0.0, 0.0]
    assert result.verdict == "no regression"
    assert result.exit_code is ExitCode.OK


@pytest.mark.parametrize(("knee", "ok"), [(250, True), (190, True), (180, True), (179, False)])
def test_knee_may_drop_ten_percent(knee: float, ok: bool) -> None:
    assert _ok("knee_rps", knee_rps=knee) is ok


@pytest.mark.parametrize(("p95", "ok"), [(20, True), (62, True), (62.1, False), (100, False)])
def test_p95_may_rise_twenty_percent_plus_two_ms(p95: float, ok: bool) -> None:
    assert _ok("p95_at_average_ms", p95_at_average_ms=p95) is ok


def test_the_absolute_slack_spares_a_fast_service() -> None:
    fast = replace(BASELINE, p95_at_average_ms=3.0)
    assert compare(fast, replace(fast, p95_at_average_ms=5.6)).rows[1].ok  # +87% but +2.6 ms
    assert not compare(fast, replace(fast, p95_at_average_ms=5.7)).rows[1].ok


@pytest.mark.parametrize(("rate", "ok"), [(0.0, True), (0.011, True), (0.0111, False)])
def test_error_rate_may_rise_by_one_point(rate: float, ok: bool) -> None:
    assert _ok("error_rate_at_average", error_rate_at_average=rate) is ok


def test_regression_verdict_names_the_metrics() -> None:
    current = replace(BASELINE, knee_rps=150.0, error_rate_at_average=0.05)
    result = compare(BASELINE, current)
    assert result.regressions == ["knee_rps", "error_rate_at_average"]
    assert result.verdict == "regression in knee_rps, error_rate_at_average"
    assert result.exit_code is ExitCode.REGRESSION
    assert result.rows[0].change_pct == pytest.approx(-25.0)
    assert result.rows[0].allowed == ">= 180"


def test_custom_tolerances() -> None:
    current = replace(BASELINE, knee_rps=150.0)
    assert compare(BASELINE, current, Tolerances(knee_drop=0.3)).exit_code is ExitCode.OK


def test_a_metric_lost_in_the_current_run_regresses() -> None:
    result = compare(BASELINE, replace(BASELINE, knee_rps=None))
    assert result.rows[0].ok is False
    assert result.rows[0].change_pct is None


def test_a_metric_missing_from_the_baseline_does_not() -> None:
    baseline = replace(BASELINE, knee_rps=None, p95_at_average_ms=None)
    result = compare(baseline, BASELINE)
    assert result.exit_code is ExitCode.OK
    assert result.rows[0].allowed == "any (no baseline)"
    assert compare(baseline, baseline).exit_code is ExitCode.OK


def test_a_zero_baseline_has_no_percentage() -> None:
    baseline = replace(BASELINE, error_rate_at_average=0.0)
    row = compare(baseline, replace(baseline, error_rate_at_average=0.005)).rows[2]
    assert (row.change_pct, row.ok) == (None, True)


def test_markdown_table() -> None:
    current = replace(BASELINE, knee_rps=150.0, p95_at_average_ms=None)
    assert compare(BASELINE, current).to_markdown() == "\n".join(
        [
            "| metric | baseline | current | change | allowed | ok |",
            "|---|---:|---:|---:|---|---|",
            "| knee_rps | 200 | 150 | -25.0% | >= 180 | **REGRESSION** |",
            "| p95_at_average_ms | 50 | n/a | n/a | <= 62 | **REGRESSION** |",
            "| error_rate_at_average | 0.001 | 0.001 | +0.0% | <= 0.011 | ok |",
            "",
            "**Verdict: regression in knee_rps, p95_at_average_ms**",
        ]
    )


def test_a_speed_note_only_when_the_box_moved_between_the_knees() -> None:
    assert speed_note(None, BoxSpeed((4.0,))) is None
    assert speed_note(BoxSpeed((4.0, 4.0)), BoxSpeed((4.0,))) is None
    assert speed_note(BoxSpeed((4.0, 4.0)), BoxSpeed((4.2, 4.4))) is None
    note = speed_note(BoxSpeed((5.0, 5.0)), BoxSpeed((4.0, 4.0)))
    assert note is not None
    assert "this box ran 20% faster in the current run" in note
