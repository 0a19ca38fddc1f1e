"""benchmarks.resilience: the goals table from scenario figures (no stack, no load)."""

from __future__ import annotations

from benchmarks.resilience import evaluate, render

FIGURES = {
    "fragile-vs-resilient": {
        "resilient_goodput_of_capacity": 0.95,
        "fragile_goodput_of_capacity": 0.12,
    },
    "retry-storm": {"fragile_amplification": 2.98, "resilient_amplification": 0.05},
    "metastable": {
        "trials": 5.0,
        "fragile_stuck": 5.0,
        "resilient_recovered": 4.0,
        "resilient_median_time_to_recover_s": 6.0,
    },
}


def test_every_goal_held() -> None:
    rows = evaluate(FIGURES)
    assert [row.held for row in rows] == [True] * 6
    table = render(rows)
    assert "95%" in table
    assert "2.98x" in table
    assert "4/5, median 6 s" in table
    assert "MISSED" not in table


def test_missed_and_unmeasured_goals_show() -> None:
    figures = {
        **FIGURES,
        "retry-storm": {"fragile_amplification": 1.8, "resilient_amplification": 0.05},
        "metastable": {**FIGURES["metastable"], "resilient_recovered": 3.0},
        "fragile-vs-resilient": None,
    }
    rows = {row.label: row for row in evaluate(figures)}
    assert rows["retry storm: naive amplification"].held is False
    assert rows["retry storm: budgeted amplification"].held is True
    assert rows["metastable: resilient recovered <= 30 s"].held is False  # 3 of 5 < 4
    assert rows["2x knee: resilient goodput / capacity"].measured == "not measured"
    assert rows["2x knee: resilient goodput / capacity"].held is None
    assert "MISSED" in render(list(rows.values()))
