"""Run-over-run regression check: the current run's summary against a baseline's.

Three metrics are diffed, each with its own kind of slack (:class:`Tolerances`):

- ``knee_rps`` regresses when it drops by more than ``knee_drop`` (relative);
- ``p95_at_average_ms`` when it rises above ``baseline x (1 + p95_rise) + p95_slack_ms`` (the
  absolute slack keeps a 3 ms -> 4 ms wobble from failing a fast service);
- ``error_rate_at_average`` when it rises by more than ``error_rate_rise`` (absolute).

A metric missing from the current run but present in the baseline is a regression (a knee that
disappeared, no latency at the average rate); missing from the baseline only is not.

When the box ran at a different speed at the two knees (:mod:`loadtests.box_speed`: a shared CI
runner's CPUs do), :func:`speed_note` says so: the verdict stands, but a CPU-bound knee moves
with the box, not only with the code.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from loadtests.box_speed import BoxSpeed, moved, speed_change
from loadtests.exit_codes import ExitCode
from loadtests.summary import RunSummary


@dataclass(frozen=True)
class Tolerances:
    """How much worse the current run may be before it counts as a regression."""

    knee_drop: float = 0.10
    p95_rise: float = 0.20
    p95_slack_ms: float = 2.0
    error_rate_rise: float = 0.01


@dataclass(frozen=True)
class Row:
    """One metric compared."""

    metric: str
    baseline: float | None
    current: float | None
    change_pct: float | None
    """``(current - baseline) / baseline x 100``; None when either is missing or baseline is 0."""
    allowed: str
    """The bound the current value had to meet, e.g. ``>= 171``."""
    ok: bool


@dataclass(frozen=True)
class Comparison:
    """Every row and the verdict."""

    rows: tuple[Row, ...]

    @property
    def regressions(self) -> list[str]:
        return [r.metric for r in self.rows if not r.ok]

    @property
    def regressed(self) -> bool:
        return bool(self.regressions)

    @property
    def verdict(self) -> str:
        if self.regressed:
            return "regression in " + ", ".join(self.regressions)
        return "no regression"

    @property
    def exit_code(self) -> ExitCode:
        return ExitCode.REGRESSION if self.regressed else ExitCode.OK

    def to_markdown(self) -> str:
        """A Markdown table of the rows, then the verdict."""
        lines = [
            "| metric | baseline | current | change | allowed | ok |",
            "|---|---:|---:|---:|---|---|",
        ]
        for r in self.rows:
            change = "n/a" if r.change_pct is None else f"{r.change_pct:+.1f}%"
            cells = [r.metric, _num(r.baseline), _num(r.current), change, r.allowed]
            lines.append(f"| {' | '.join(cells)} | {'ok' if r.ok else '**REGRESSION**'} |")
        lines += ["", f"**Verdict: {self.verdict}**"]
        return "\n".join(lines)


def _num(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4g}"


def _row(
    metric: str,
    baseline: float | None,
    current: float | None,
    limit: Callable[[float], float],
    higher_is_better: bool,
) -> Row:
    if baseline is None:
        return Row(metric, None, current, None, "any (no baseline)", True)
    bound = limit(baseline)
    allowed = f"{'>=' if higher_is_better else '<='} {bound:.4g}"
    if current is None:
        return Row(metric, baseline, None, None, allowed, False)
    change = (current - baseline) / baseline * 100 if baseline else None
    slack = 1e-9 * abs(bound)  # a value on the bound passes despite float rounding
    ok = current >= bound - slack if higher_is_better else current <= bound + slack
    return Row(metric, baseline, current, change, allowed, ok)


def compare(
    baseline: RunSummary, current: RunSummary, tolerances: Tolerances = Tolerances()
) -> Comparison:
    """Diff ``current`` against ``baseline`` under ``tolerances``."""
    t = tolerances
    return Comparison(
        (
            _row(
                "knee_rps",
                baseline.knee_rps,
                current.knee_rps,
                lambda b: b * (1 - t.knee_drop),
                higher_is_better=True,
            ),
            _row(
                "p95_at_average_ms",
                baseline.p95_at_average_ms,
                current.p95_at_average_ms,
                lambda b: b * (1 + t.p95_rise) + t.p95_slack_ms,
                higher_is_better=False,
            ),
            _row(
                "error_rate_at_average",
                baseline.error_rate_at_average,
                current.error_rate_at_average,
                lambda b: b + t.error_rate_rise,
                higher_is_better=False,
            ),
        )
    )


def speed_note(baseline: BoxSpeed | None, current: BoxSpeed | None) -> str | None:
    """A warning when the box's speed at the current knee moved from the baseline's, else None."""
    if baseline is None or current is None:
        return None
    change = speed_change(baseline, current)
    if change is None or not moved(change):
        return None
    return (
        f"Box speed at the knee (a fixed loop's CPU time on each CPU): baseline"
        f" {baseline.describe()}, current {current.describe()}: this box ran"
        f" {abs(change):.0%} {'slower' if change > 0 else 'faster'} in the current run. A knee"
        " limited by the service's CPU moves with the box's speed: re-run before trusting a"
        " change in it."
    )
