"""Thresholds: parsing, the TOML form, evaluation against a summary, exit codes."""

from __future__ import annotations

from dataclasses import replace

import pytest

from loadtests.exit_codes import ExitCode
from loadtests.summary import METRICS, RunSummary
from loadtests.thresholds import (
    Threshold,
    evaluate,
    exit_code,
    parse_thresholds_toml,
)

SUMMARY = RunSummary(
    knee_rps=190.0,
    onset_rps=170.0,
    collapse_rps=None,
    predicted_rps=194.0,
    knee_error_ratio=-0.02,
    p95_at_average_ms=42.0,
    p99_at_average_ms=80.0,
    error_rate_at_average=0.002,
    goodput_ratio_at_peak=0.93,
    max_offered_rps=300.0,
    dropped_ratio=0.0,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("knee_rps>=150", Threshold("knee_rps", ">=", 150)),
        ("p95_at_average_ms<=100", Threshold("p95_at_average_ms", "<=", 100)),
        ("error_rate_at_average<=0.01", Threshold("error_rate_at_average", "<=", 0.01)),
        ("goodput_ratio_at_peak>=0.9", Threshold("goodput_ratio_at_peak", ">=", 0.9)),
        ("  knee_rps  >  1.5e2 ", Threshold("knee_rps", ">", 150)),
        ("knee_error_ratio>-0.1", Threshold("knee_error_ratio", ">", -0.1)),
        ("dropped_ratio<0.05", Threshold("dropped_ratio", "<", 0.05)),
        ("max_offered_rps==300", Threshold("max_offered_rps", "==", 300)),
    ],
)
def test_parse(text: str, expected: Threshold) -> None:
    assert Threshold.parse(text) == expected


def test_str_reads_like_the_input() -> None:
    assert str(Threshold.parse("p95_at_average_ms<=100")) == "p95_at_average_ms <= 100"


def test_unknown_metric_lists_the_known_ones() -> None:
    with pytest.raises(ValueError, match="unknown metric 'p95_ms'") as info:
        Threshold.parse("p95_ms<=100")
    assert "known metrics: " + ", ".join(METRICS) in str(info.value)
    with pytest.raises(ValueError, match="unknown metric 'bogus'"):
        Threshold("bogus", "<", 1)


@pytest.mark.parametrize(
    "text",
    ["", "knee_rps", "knee_rps>=", "knee_rps=>150", "knee_rps = 150", ">=150", "knee rps>=1"],
)
def test_malformed_thresholds_explain_the_syntax(text: str) -> None:
    with pytest.raises(ValueError, match="malformed threshold") as info:
        Threshold.parse(text)
    assert "OP one of <, <=, >, >=, ==" in str(info.value)
    assert "known metrics: knee_rps" in str(info.value)


@pytest.mark.parametrize("text", ["knee_rps>=abc", "knee_rps>=1,5", "knee_rps>=150rps"])
def test_a_value_must_be_a_number(text: str) -> None:
    with pytest.raises(ValueError, match="is not a number"):
        Threshold.parse(text)


@pytest.mark.parametrize("text", ["knee_rps>=nan", "knee_rps<inf"])
def test_a_value_must_be_finite(text: str) -> None:
    with pytest.raises(ValueError, match="must be finite"):
        Threshold.parse(text)


def test_unknown_operator_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown operator '!='"):
        Threshold("knee_rps", "!=", 1)


def test_toml_array_of_strings() -> None:
    text = """
thresholds = [
    "knee_rps >= 150",
    "knee_rps <= 400",  # two bounds on one metric
    "p95_at_average_ms <= 100",
]

[run]
profile = "ramp"
"""
    assert parse_thresholds_toml(text) == [
        Threshold("knee_rps", ">=", 150),
        Threshold("knee_rps", "<=", 400),
        Threshold("p95_at_average_ms", "<=", 100),
    ]
    assert parse_thresholds_toml("thresholds = []") == []


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("thresholds = [", "not valid TOML"),
        ("[thresholds]\nknee_rps = '>= 150'", "needs a top-level array"),
        ("other = 1", "needs a top-level array"),
        ("thresholds = [150]", r"thresholds\[0\] must be a string"),
        ('thresholds = ["knee_rps >= 1", "nope"]', r"thresholds\[1\]: malformed threshold 'nope'"),
    ],
)
def test_toml_errors_are_clear(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_thresholds_toml(text)


def test_evaluate_passes_and_fails_with_actual_values() -> None:
    results = evaluate(
        [Threshold.parse("knee_rps>=150"), Threshold.parse("goodput_ratio_at_peak>=0.95")],
        SUMMARY,
    )
    assert [(r.passed, r.actual) for r in results] == [(True, 190), (False, 0.93)]
    assert results[0].message == "knee_rps >= 150: ok (actual 190)"
    assert results[1].message == "goodput_ratio_at_peak >= 0.95: FAILED (actual 0.93)"


@pytest.mark.parametrize(
    ("text", "passed"),
    [
        ("knee_rps<190", False),
        ("knee_rps<=190", True),
        ("knee_rps>190", False),
        ("knee_rps>=190", True),
        ("knee_rps==190", True),
        ("knee_rps==190.1", False),
    ],
)
def test_every_operator_at_the_boundary(text: str, passed: bool) -> None:
    assert evaluate([Threshold.parse(text)], SUMMARY)[0].passed is passed


def test_equality_tolerates_float_rounding() -> None:
    summary = replace(SUMMARY, error_rate_at_average=0.1 + 0.2)
    assert evaluate([Threshold.parse("error_rate_at_average==0.3")], summary)[0].passed


def test_a_missing_metric_fails_and_says_why() -> None:
    collapse, knee = Threshold.parse("collapse_rps>=250"), Threshold.parse("knee_rps>=150")
    results = evaluate([collapse, knee], replace(SUMMARY, knee_rps=None))
    assert [r.passed for r in results] == [False, False]
    assert [r.actual for r in results] == [None, None]
    assert results[0].message == (
        "collapse_rps >= 250: FAILED, no value (goodput never collapsed in this run)"
    )
    assert "no knee: even the lowest-load stage missed the SLO" in results[1].message


def test_exit_code() -> None:
    ok = evaluate([Threshold.parse("knee_rps>=150")], SUMMARY)
    breached = evaluate(
        [Threshold.parse("knee_rps>=150"), Threshold.parse("knee_rps>=200")], SUMMARY
    )
    assert exit_code(ok) is ExitCode.OK
    assert exit_code([]) is ExitCode.OK
    assert exit_code(breached) is ExitCode.THRESHOLDS_BREACHED


def test_exit_codes_are_stable() -> None:
    assert {c.name: int(c) for c in ExitCode} == {
        "OK": 0,
        "THRESHOLDS_BREACHED": 1,
        "USAGE": 2,
        "RUN_FAILED": 3,
        "ABORTED_ON_COLLAPSE": 4,
        "REGRESSION": 5,
        "DATA_LOST": 6,
    }
