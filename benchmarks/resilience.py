"""``python -m benchmarks.resilience``: issue 4's resilience goals side by side, in one run.

Runs three ``brink scenario`` s, each on a fresh native stack, and puts their figures against the
goals in one table:

* ``fragile-vs-resilient``: goodput at 2x the knee as a share of the measured capacity
  (resilient ≥ 90%, fragile ≤ 30%);
* ``retry-storm``: requests reaching the dependency per client request (naive ≥ 2x,
  budgeted ≤ 1.2x);
* ``metastable`` with ``--repeat N`` (5 by default): fragile stuck and resilient recovered within
  30 s, each in at least 4 of 5 trials, with the resilient preset's median time to recover.

Each scenario's own reports (scenario.json, summary.md, report.html) land in ``OUT/<scenario>``;
the table goes to stdout and, with every figure, to ``OUT/resilience.json``. Every phase is
bounded by the load runner's watchdog; a full run takes ~30 min (``--quick``: ~12 min).
Exit 0 when every goal held, 1 when one did not, 3 when a scenario could not run.
"""

from __future__ import annotations

import argparse
import json
import math
import operator
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from benchmarks.cli_kit import Progress, positive
from loadtests.exit_codes import ExitCode
from loadtests.scenarios.base import ScenarioOptions
from loadtests.scenarios.runner import run_scenario

SCENARIOS = ("fragile-vs-resilient", "retry-storm", "metastable")
Figures = Mapping[str, float]


@dataclass(frozen=True)
class Goal:
    """One goal of the issue: a figure of a scenario, compared with a target."""

    scenario: str
    label: str
    figure: Callable[[Figures], float | None]
    holds: Callable[[float, Figures], bool]
    goal: str
    show: Callable[[float, Figures], str]


def _get(name: str) -> Callable[[Figures], float | None]:
    return lambda figures: figures.get(name)


def _share(value: float, _: Figures) -> str:
    return f"{value:.0%}"


def _times(value: float, _: Figures) -> str:
    return f"{value:.2f}x"


def _of_trials(value: float, figures: Figures) -> str:
    return f"{value:.0f}/{figures.get('trials', math.nan):.0f}"


def _most_trials(value: float, figures: Figures) -> bool:
    trials = figures.get("trials", 0.0)
    return trials > 0 and value >= math.ceil(0.8 * trials)


def _recovery(value: float, figures: Figures) -> str:
    median = figures.get("resilient_median_time_to_recover_s")
    tail = "" if median is None else f", median {median:.0f} s"
    return f"{_of_trials(value, figures)}{tail}"


def _compare(op: Callable[[float, float], bool], target: float) -> Callable[[float, Figures], bool]:
    return lambda value, _figures: op(value, target)


GOALS = (
    Goal("fragile-vs-resilient", "2x knee: resilient goodput / capacity",
         _get("resilient_goodput_of_capacity"), _compare(operator.ge, 0.9), ">= 90%", _share),
    Goal("fragile-vs-resilient", "2x knee: fragile goodput / capacity",
         _get("fragile_goodput_of_capacity"), _compare(operator.le, 0.3), "<= 30%", _share),
    Goal("retry-storm", "retry storm: naive amplification",
         _get("fragile_amplification"), _compare(operator.ge, 2.0), ">= 2x", _times),
    Goal("retry-storm", "retry storm: budgeted amplification",
         _get("resilient_amplification"), _compare(operator.le, 1.2), "<= 1.2x", _times),
    Goal("metastable", "metastable: fragile stuck",
         _get("fragile_stuck"), _most_trials, ">= 4 of 5", _of_trials),
    Goal("metastable", "metastable: resilient recovered <= 30 s",
         _get("resilient_recovered"), _most_trials, ">= 4 of 5", _recovery),
)  # fmt: skip


@dataclass(frozen=True)
class Row:
    label: str
    goal: str
    measured: str
    held: bool | None
    """None: not measured (the scenario did not run or lacked the figure)."""


def evaluate(figures: Mapping[str, Figures | None]) -> list[Row]:
    """Each goal against its scenario's figures (None: that scenario could not run)."""
    rows = []
    for goal in GOALS:
        scenario = figures.get(goal.scenario)
        value = goal.figure(scenario) if scenario is not None else None
        if scenario is None or value is None or math.isnan(value):
            rows.append(Row(goal.label, goal.goal, "not measured", None))
            continue
        rows.append(
            Row(goal.label, goal.goal, goal.show(value, scenario), goal.holds(value, scenario))
        )
    return rows


def render(rows: Sequence[Row]) -> str:
    """A plain-text table: goal, target, measured, verdict."""
    header = ("goal", "target", "measured", "")
    cells = [header] + [
        (r.label, r.goal, r.measured, {True: "ok", False: "MISSED", None: "-"}[r.held])
        for r in rows
    ]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in cells
    )


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.resilience",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--quick", action="store_true", help="short stages: rougher figures")
    parser.add_argument(
        "--repeat", type=positive(int), default=5, help="metastable trials per preset (5)"
    )
    parser.add_argument(
        "--only", action="append", choices=SCENARIOS, help="run only this scenario (repeatable)"
    )
    parser.add_argument("--seed", type=int, default=None, help="seed of the request mix")
    parser.add_argument(
        "--out", type=Path, default=None, help="run folder (default runs/<time>-resilience)"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    progress = Progress()
    out: Path = args.out or Path("runs") / f"{time.strftime('%Y%m%d-%H%M%S')}-resilience"
    chosen = [name for name in SCENARIOS if not args.only or name in args.only]
    figures: dict[str, Figures | None] = {}
    codes: dict[str, int] = {}
    for name in chosen:
        repeat = args.repeat if name == "metastable" else 1
        options = ScenarioOptions(quick=args.quick, seed=args.seed, repeat=repeat)
        progress(f"{name}: starting (repeat {repeat})")
        result, code = run_scenario(name, options, out / name, say=progress)
        codes[name] = int(code)
        figures[name] = dict(result.verdict.figures) if result is not None else None
        verdict = result.verdict.label if result is not None else "run failed"
        progress(f"{name}: {verdict} (exit {int(code)})")
    rows = evaluate({name: figures.get(name) for name in SCENARIOS if name in chosen})
    rows = [row for row in rows if any(g.label == row.label and g.scenario in chosen
                                       for g in GOALS)]  # fmt: skip
    table = render(rows)
    print(table)
    out.mkdir(parents=True, exist_ok=True)
    document = {
        "quick": args.quick,
        "repeat": args.repeat,
        "exit_codes": codes,
        "figures": figures,
        "goals": [row.__dict__ for row in rows],
    }
    (out / "resilience.json").write_text(json.dumps(document, indent=2, default=str))
    progress(f"results: {out / 'resilience.json'}")
    if any(code == ExitCode.RUN_FAILED for code in codes.values()):
        return int(ExitCode.RUN_FAILED)
    missed = any(row.held is not True for row in rows)
    return int(ExitCode.THRESHOLDS_BREACHED if missed else ExitCode.OK)


if __name__ == "__main__":
    sys.exit(main())
