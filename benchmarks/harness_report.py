"""The harness's side-by-side table (stdout) and the same figures as JSON (``--json PATH``)."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

from benchmarks.contention import Contention
from benchmarks.generator import GeneratorResult
from benchmarks.quick import QUICK_GOAL_S, median_wall_s
from benchmarks.ramps import RampRow
from loadtests.box_speed import MOVED, moved

GENERATOR_GOAL = 3.0
"""Max offered rate of one generator process, times the default knee."""
KNEE_GOAL = 0.10
"""|measured knee - predicted| / predicted."""
OTHER_LOAD_WARNING = 0.2


@dataclass
class HarnessReport:
    """Everything one harness run measured, and how it was configured."""

    config: dict[str, Any]
    generators: list[GeneratorResult] = field(default_factory=list)
    default: RampRow | None = None
    knees: list[RampRow] = field(default_factory=list)
    quick: list[RampRow] = field(default_factory=list)
    contention: dict[str, Contention | None] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)
    """Parts that stopped on an error, with its first line."""
    order_cpu_s: float | None = None
    """Service CPU per order from the default probe: (b)'s estimate of a CPU-bound rate."""
    wall_s: float = 0.0

    def ratio(self, result: GeneratorResult) -> float | None:
        top = result.max_stage
        knee = self.default.knee_rps if self.default else None
        return top.offered_rps / knee if top is not None and knee else None

    @property
    def missing(self) -> list[str]:
        """Figures a part should have produced and did not."""
        lost = [f"(a) {_who(g)}: no stage kept up" for g in self.generators if not g.max_stage]
        if self.default is not None and not self.default.named_knee:
            lost.append("(a) default knee not found")
        lost += [f"{r.label}: no knee" for r in self.knees if not r.named_knee]
        lost += [f"{r.label}: no knee" for r in self.quick if not r.named_knee]
        return lost


def _who(result: GeneratorResult) -> str:
    return f"--workers {result.plan.workers}" if result.plan.workers else "1 process"


def _n(value: float | None, spec: str = ".0f", width: int = 8) -> str:
    text = "—" if value is None or math.isnan(value) else format(value, spec)
    return f"{text:>{width}}"


def _goal(ok: bool | None) -> str:
    return {None: "no figure", True: "meets goal", False: "BELOW GOAL"}[ok]


def _generator_lines(report: HarnessReport) -> list[str]:
    if not report.generators:
        return []
    c = report.generators[0].plan.criteria
    lines = [
        "(a) load generator's max offered rate: brink's locustfile vs a canned 200 target "
        "(mix cpu=1), breakpoint steps of "
        f"{report.generators[0].plan.step_s:g} s",
        f"    kept up = offered ≥ {c.min_offered_share:.0%} of target, dropped ≤ "
        f"{c.max_dropped_share:.0%}, failed ≤ {c.max_failed_share:.0%}, client p95 ≤ "
        f"{c.max_p95_s * 1000:g} ms; max = highest such stage below the first that could not send",
        "    generator       max offered/s  target/s  p95 ms  gen CPU  per proc  target CPU"
        "  box CPU  stages  first→step     first failure",
    ]
    lines += [_generator_row(g) for g in report.generators]
    return lines + _ratio_lines(report)


def _generator_row(g: GeneratorResult) -> str:
    top = g.max_stage
    above = [s for s in g.stages if s.failure and (top is None or s.target_rps > top.target_rps)]
    failed = f"{above[0].target_rps:.0f}: {above[0].failure}" if above else "—"
    if top is None:
        return f"    {_who(g):<15}{'—':>14}  (no stage kept up; first failure {failed})"
    per_process = None
    if top.generator_cores is not None:
        per_process = top.generator_cores / max(1, g.plan.workers)
    return (
        f"    {_who(g):<15}{_n(top.offered_rps, '.0f', 14)}{_n(top.target_rps, '.0f', 10)}"
        f"{_n(top.p95_s * 1000 if top.p95_s else None, '.1f', 8)}"
        f"{_n(top.generator_cores, '.2f', 9)}{_n(per_process, '.2f', 10)}"
        f"{_n(top.target_cores, '.2f', 12)}{_n(top.box_cores, '.2f', 9)}{len(g.stages):>8}"
        f"   {g.plan.start_rps:>5.0f}→+{g.plan.step_rps:<5.0f}  {failed}"
    )


def _ratio_lines(report: HarnessReport) -> list[str]:
    d = report.default
    if d is None:
        return ["    default knee: not measured (part a's ramp skipped)"]
    lines = [
        f"    default knee (run_job, default stack settings and mix, {d.ramp['arrivals']} "
        f"arrivals, breakpoint {d.first_rps:.0f} +{d.increment_rps:.0f} req/s x "
        f"{d.ramp['step_s']:g} s, SLO {d.ramp['slo_s'] * 1000:g} ms): "
        f"{_n(d.knee_rps, '.0f', 0)} req/s (predicted {_n(d.predicted_rps, '.0f', 0)}, "
        f"bottleneck {d.bottleneck}); wall {d.wall_s:.0f} s",
    ]
    ratios = [(g, report.ratio(g)) for g in report.generators]
    cells = ", ".join(f"{_who(g)} {_n(r, '.1f', 0)}x" for g, r in ratios)
    single = next((r for g, r in ratios if not g.plan.workers), None)
    verdict = _goal(None if single is None else single >= GENERATOR_GOAL)
    lines.append(
        f"    max offered / default knee: {cells}; goal ≥ {GENERATOR_GOAL:g}x (1 process):"
        f" {verdict}"
    )
    return lines


def _knee_row(r: RampRow, label: str) -> str:
    error = None if r.error is None else r.error * 100
    speed = None if r.box_speed_change is None else r.box_speed_change * 100
    return (
        f"    {label:<22}{_n(r.probe_hold_ms, '.2f', 7)}{_n(r.predicted_rps, '.0f', 9)}"
        f"  {r.bottleneck or '—':<10}{_n(r.knee_rps, '.0f', 7)}{_n(r.knee_target_rps, '.0f', 9)}"
        f"{_n(error, '+.1f', 8)}{' ' if error is None else '%'}"
        f"{_n(r.knee_hold_ms, '.2f', 10)}{_n(r.knee_cpu, '.2f', 6)}"
        f"{_n(speed, '+.0f', 6)}{' ' if speed is None else '%'}"
        f"{r.stages:>7}  {r.first_rps:>5.0f} +{r.increment_rps:<4.0f}{r.wall_s:>6.0f}"
    )


_KNEE_HEADER = (
    f"    {'config':<22}{'hold':>7}{'predict':>9}  {'bottleneck':<10}{'knee':>7}{'(target)':>9}"
    f"{'error':>8} {'hold@knee':>10}{'CPU':>6}{'box':>7}{'stages':>7}  {'first':>5} +{'step':<4}"
    f"{'wall':>6}",
    f"    {'':<22}{'ms':>7}{'req/s':>9}  {'':<10}{'req/s':>7}{'req/s':>9}"
    f"{'':>8} {'ms':>10}{'cores':>6}{'slower':>7}{'':>7}  {'req/s':>5}  {'':<4}{'s':>5}",
)


def _knee_lines(report: HarnessReport) -> list[str]:
    if not report.knees:
        return []
    first = report.knees[0].ramp
    start = float(report.config.get("knee_start", 0.5))
    lines = [
        f"(b) predicted vs measured knee: mix {first['mix']}, SLO {first['slo_s'] * 1000:g} ms,"
        f" {first['arrivals']} arrivals, breakpoint from {start:g} x pool/hold in"
        f" {start / 10:.0%} steps of {first['step_s']:g} s (CPU-bound: x the probe's"
        " prediction); one run_job each",
        *_KNEE_HEADER,
    ]
    lines += [_knee_row(r, r.label.removeprefix("(b) ")) for r in report.knees]
    if report.default is not None:
        lines.append(_knee_row(report.default, "default stack+mix [a]"))
    counts = []
    for kind, rows in (
        ("DB-bound", [r for r in report.knees if r.bottleneck == "db_pool"]),
        ("other", [r for r in report.knees if r.bottleneck != "db_pool"]),
    ):
        met = sum(r.error is not None and abs(r.error) <= KNEE_GOAL for r in rows)
        counts += [f"{met} of {len(rows)} {kind}"] if rows else []
    lines.append(
        f"    goal |error| ≤ {KNEE_GOAL:.0%}: {', '.join(counts)} configurations"
        + ("; [a] = part (a)'s default ramp, not counted" if report.default else "")
    )
    held = [
        r for r in report.knees if r.box_speed_change is not None and not moved(r.box_speed_change)
    ]
    if held:
        met = sum(r.error is not None and abs(r.error) <= KNEE_GOAL for r in held)
        lines.append(
            f"    where the box held its speed (box column within ±{MOVED:.0%}): {met} of"
            f" {len(held)} configurations"
        )
    lines.append(
        "    box = how much slower a fixed loop ran on the box's CPUs in the knee stage than"
        " during the probe (loadtests.box_speed): a CPU-bound knee can move with it"
    )
    lines += [f"    {r.label}: {note}" for r in report.knees for note in r.notes]
    return lines


def _quick_lines(report: HarnessReport) -> list[str]:
    if not report.quick:
        return []
    q = report.quick[0].ramp
    median = median_wall_s(report.quick)
    lines = [
        f"(c) quick ramp that names the knee, end to end (stack start, probe, ramp, reports):"
        f" the tests/e2e config, pool 4 / 40 ms, breakpoint {q['average_rps']:g} +"
        f"{q['peak_rps'] / 10:g} req/s x {q['step_s']:g} s, SLO {q['slo_s'] * 1000:g} ms,"
        f" {q['arrivals']} arrivals",
        "    run   wall s  knee/s  predicted/s  stages  verdict",
    ]
    for number, r in enumerate(report.quick, start=1):
        lines.append(
            f"    {number:>3}{r.wall_s:>9.1f}{_n(r.knee_rps, '.0f', 8)}"
            f"{_n(r.predicted_rps, '.0f', 13)}{r.stages:>8}  {r.verdict}"
        )
    named = all(r.named_knee for r in report.quick)
    ok = None if median is None else median <= QUICK_GOAL_S and named
    lines.append(
        f"    median wall {_n(median, '.1f', 0)} s; goal ≤ {QUICK_GOAL_S:g} s with a knee named:"
        f" {_goal(ok)}"
    )
    return lines


def _load_lines(report: HarnessReport) -> list[str]:
    parts = {k: v for k, v in report.contention.items() if v is not None}
    if not parts:
        return []
    lines = [
        "CPU by part (mean cores; 'other' = not this harness, not Postgres; "
        f"{report.config['cpus']} cores on this box):"
    ]
    for part, c in parts.items():
        top = ", ".join(f"{name} {cores:.2f}" for name, cores in c.top_other) or "—"
        fastest, median, slowest = c.spin_ms
        lines.append(
            f"    {part}: box {c.box:.2f}, harness {c.harness:.2f}, postgres {c.postgres:.2f},"
            f" other {c.other:.2f} (max {c.other_max:.2f}; {top}); box speed: a fixed loop took"
            f" {fastest:.1f} / {median:.1f} / {slowest:.1f} CPU ms (fastest / median / slowest,"
            f" {c.speed_spread:+.0%})"
        )
    if any(c.other > OTHER_LOAD_WARNING for c in parts.values()):
        lines.append(
            "    ! other processes used the CPU during the run: figures are noisier and lower"
        )
    return lines


def format_report(report: HarnessReport) -> str:
    cfg = report.config
    title = (
        f"brink harness: wall {report.wall_s / 60:.1f} min, {cfg['cpus']} cores, "
        f"Python {cfg['python']}, Locust {cfg['locust']}; run folders under {cfg['run_dir']}"
    )
    sections = [
        [title],
        _generator_lines(report),
        _knee_lines(report),
        _quick_lines(report),
        _load_lines(report),
        [f"! {m}" for m in [*report.failures, *report.missing]],
    ]
    return "\n\n".join("\n".join(lines) for lines in sections if lines)


def _row_json(row: RampRow | None) -> dict[str, Any] | None:
    if row is None:
        return None
    return {**dataclasses.asdict(row), "error": row.error, "named_knee": row.named_knee}


def to_json(report: HarnessReport) -> dict[str, Any]:
    """Every figure as plain JSON data."""
    return {
        "config": report.config,
        "wall_s": report.wall_s,
        "order_cpu_s": report.order_cpu_s,
        "failures": report.failures,
        "missing": report.missing,
        "generators": [
            {
                "plan": dataclasses.asdict(g.plan),
                "max_offered_rps": g.max_stage.offered_rps if g.max_stage else None,
                "max_target_rps": g.max_stage.target_rps if g.max_stage else None,
                "ratio_to_default_knee": report.ratio(g),
                "stopped_early": g.stopped_early,
                "wall_s": g.wall_s,
                "stages": [{**dataclasses.asdict(s), "passed": s.passed} for s in g.stages],
            }
            for g in report.generators
        ],
        "default_knee": _row_json(report.default),
        "knees": [_row_json(r) for r in report.knees],
        "quick": {
            "runs": [_row_json(r) for r in report.quick],
            "median_wall_s": median_wall_s(report.quick),
        },
        "contention": {
            k: None if v is None else dataclasses.asdict(v) for k, v in report.contention.items()
        },
    }
