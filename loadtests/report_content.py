"""What a ramp's report says, as :mod:`loadtests.report_doc` blocks, in reading order.

Verdict, tipping point, prediction against measurement, thresholds, the order ledger, stages,
plots; the HTML page adds the probe's measured demands and the (redacted) configuration.
"""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from typing import Any

from loadtests.box_speed import moved, speed_change
from loadtests.capacity import compare_knee
from loadtests.exit_codes import ExitCode
from loadtests.ledger import LedgerVerdict
from loadtests.outcome import RampOutcome
from loadtests.plots import slo_seconds
from loadtests.probe import FullLoop, ProbeResult
from loadtests.report_doc import Block, Code, Heading, Images, Inline, Pre, Table, para
from loadtests.samples import StageSample

PLOTS: tuple[tuple[str, str], ...] = (
    ("throughput", "Throughput: the knee, where goodput stops following the offered load"),
    ("latency", "Latency: p50, p95 and p99 against the SLO"),
    ("saturation", "Saturation: the DB pool in use, and the queues in front of it"),
)
_VERDICTS = {
    ExitCode.OK: "PASS",
    ExitCode.THRESHOLDS_BREACHED: "FAIL: thresholds breached",
    ExitCode.RUN_FAILED: "FAIL: the run failed (no verdict on the service)",
    ExitCode.ABORTED_ON_COLLAPSE: "FAIL: aborted on collapse",
    ExitCode.DATA_LOST: "FAIL: the order ledger does not hold (the service lied about writes)",
}
_NONE = "-"


def verdict(outcome: RampOutcome) -> str:
    """``PASS``, or ``FAIL: <why>``, from the exit code."""
    code = outcome.exit_code
    return _VERDICTS.get(code, f"FAIL: {code.name.lower().replace('_', ' ')}")


def title(config: dict[str, Any]) -> str:
    profile = config.get("profile")
    return f"brink ramp: {profile}" if profile else "brink ramp"


def _rps(value: float | None) -> str:
    if value is None:
        return _NONE
    return f"{value:.1f}" if abs(value) < 10 else f"{value:.0f}"


def _ms(seconds: float | None) -> str:
    if seconds is None:
        return _NONE
    ms = seconds * 1000
    return f"{ms:.1f}" if ms < 100 else f"{ms:.0f}"


def _run_line(outcome: RampOutcome, config: dict[str, Any]) -> str:
    """E.g. "Average 50 req/s, peak 100 req/s, SLO 500 ms. 9 stages in 190 s, started ..."."""
    parts = [
        f"{label} {config[key]:g} req/s"
        for key, label in (("average_rps", "average"), ("peak_rps", "peak"))
        if isinstance(config.get(key), int | float)
    ]
    if parts and config.get("rates_from_prediction"):
        parts[-1] += " (both from the predicted saturation)"
    slo = slo_seconds(config)
    parts += [f"SLO {slo * 1000:g} ms"] if slo is not None else []
    parts += [f"against {config['target']}"] if config.get("target") else []
    started = datetime.fromtimestamp(outcome.started_at, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    took = max(0.0, outcome.finished_at - outcome.started_at)
    code = outcome.exit_code
    head = ", ".join(parts) + ". " if parts else ""
    head = head[:1].upper() + head[1:]
    return (
        f"{head}{len(outcome.stages)} stages in {took:.0f} s, started {started}; "
        f"exit code {int(code)} ({code.name})."
    )


def durability_note(durable: object) -> str | None:
    """A warning when the run's Postgres was not durable; None when it was (or is unknown)."""
    if durable is not False:
        return None
    return (
        "Postgres ran non-durable (--non-durable-postgres: fsync, synchronous_commit and"
        " full_page_writes off): commits did not wait for their WAL flush, so write-path figures"
        " are not comparable with a durable run's, and a crash could lose acknowledged orders."
    )


def _name(stage: StageSample | None) -> str:
    return _NONE if stage is None else stage.name


def _tipping(outcome: RampOutcome) -> list[Block]:
    tip, pred = outcome.tipping, outcome.prediction
    by_index = {s.index: s for s in outcome.stages}

    def at(index: int | None) -> StageSample | None:
        return None if index is None else by_index.get(index)

    def rate(value: float | None) -> str:
        return "not reached" if value is None else _rps(value)

    knee = "none" if tip.knee_rps is None else _rps(tip.knee_rps)
    rows: list[tuple[Inline, ...]] = [
        ("onset", rate(tip.onset_rps), _name(at(tip.onset_index)), "p50 starts to climb"),
        (
            "knee",
            f"≥ {knee}" if tip.knee_is_lower_bound else knee,
            _name(at(tip.knee_index)),
            "the highest load still served well",
        ),
        (
            "collapse",
            rate(tip.collapse_rps),
            _name(at(tip.collapse_index)),
            "load rose, goodput fell",
        ),
    ]
    if pred is not None:
        rows.append(
            (
                "predicted saturation",
                _rps(pred.saturation_rps),
                _NONE,
                f"the {pred.bottleneck} is full",
            )
        )
    table = Table(("point", "offered (req/s)", "stage", "meaning"), tuple(rows), frozenset({1}))
    return [Heading("Tipping point"), para(tip.explanation), table]


def _prediction(outcome: RampOutcome) -> list[Block]:
    pred, tip = outcome.prediction, outcome.tipping
    blocks: list[Block] = [Heading("Predicted against measured")]
    if pred is None:
        return [*blocks, para("No capacity model: the probe did not run, nothing to compare.")]
    line = f"Predicted saturation {pred.saturation_rps:.0f} req/s; "
    if tip.knee_rps is None:
        line += "no measured knee to compare it with."
    else:
        error = compare_knee(pred, tip.knee_rps).error_ratio
        bound = "≥ " if tip.knee_is_lower_bound else ""
        side = "below" if error < 0 else "above"
        line += f"measured knee {bound}{tip.knee_rps:.0f} req/s, "
        line += f"{abs(error):.1%} {side} the prediction."
        if tip.knee_is_lower_bound:
            line += " The ramp never went past its knee, so the measured figure is a lower bound."
    limiting = pred.limiting
    blocks += [para(line), para("Bottleneck: ", Code(limiting.explain()))]
    if speed := _box_speed(outcome):
        blocks.append(para(speed))
    knee_use = pred.utilisation_at(tip.knee_rps) if tip.knee_rps is not None else {}
    rows = tuple(
        (
            Code(r.name),
            f"{r.capacity:g} {r.capacity_unit}",
            f"{r.demand:.4g} {r.demand_unit}",
            f"{r.max_rps:.0f}",
            f"{knee_use[r.name]:.0%}" if r.name in knee_use else _NONE,
        )
        for r in sorted(pred.resources, key=lambda r: r.max_rps)
    )
    headers = ("resource", "capacity", "demand per request", "max req/s", "used at the knee")
    return [*blocks, Table(headers, rows, frozenset({3, 4}))]


def _box_speed(outcome: RampOutcome) -> str | None:
    """Whether the box ran as fast at the knee as during the probe (a CPU-bound knee can move
    with it), or None when either was not measured. The box is the machine brink runs on: the
    service's too, unless ``--target`` points elsewhere."""
    if (speeds := outcome.box_speeds()) is None:
        return None
    probe, at_knee = speeds
    if (change := speed_change(probe, at_knee)) is None:
        return None
    line = (
        "Box speed (a fixed loop's CPU time on each CPU of the machine brink ran on, lower is"
        f" faster): {probe.describe()} in the probe, {at_knee.describe()} at the knee: "
    )
    if not moved(change):
        return line + "the box held its speed."
    side = "slower" if change > 0 else "faster"
    return line + (
        f"the box ran {abs(change):.0%} {side} at the knee than in the probe. When the box's"
        " speed moves, so can a knee the service's CPU limits (a pool-bound one much less):"
        " re-run before reading much into the gap between the two."
    )


def _thresholds(outcome: RampOutcome) -> list[Block]:
    blocks: list[Block] = [Heading("Thresholds")]
    if not outcome.thresholds:
        return [*blocks, para("No thresholds were declared.")]
    rows: list[tuple[Inline, ...]] = []
    for result in outcome.thresholds:
        detail = result.message.partition(": ")[2].removeprefix("FAILED, ")
        verdict_ = "pass" if result.passed else "FAIL"
        if result.actual is None:
            verdict_ += f": {detail}"
        actual = _NONE if result.actual is None else f"{result.actual:.4g}"
        rows.append((Code(str(result.threshold)), actual, verdict_))
    return [*blocks, Table(("threshold", "actual", "result"), tuple(rows), frozenset({1}))]


def _faults(outcome: RampOutcome) -> list[Block]:
    """The faults the schedule applied and undid, with their times; nothing without faults."""
    if not outcome.faults:
        return []
    rows = tuple(
        (f"{f.t_s:.1f}", f.kind, f.action, f.result if f.ok else f"FAILED: {f.error}")
        for f in outcome.faults
    )
    return [
        Heading("Faults"),
        para("Seconds after the load generator started:"),
        Table(("t (s)", "event", "fault", "result"), rows, frozenset({0})),
    ]


_LEDGER_UNCHECKED = "Not checked: brink did not know the database, or it did not answer."


def ledger_blocks(ledger: LedgerVerdict | None) -> list[Block]:
    """Every order the generator sent, against the orders table: nothing lost or invented."""
    blocks: list[Block] = [Heading("Ledger")]
    if ledger is None:
        return [*blocks, para(_LEDGER_UNCHECKED)]
    rows: tuple[tuple[Inline, ...], ...] = tuple(
        (what, str(count), expected)
        for what, count, expected in (
            ("sent", ledger.sent, ""),
            ("acknowledged", ledger.acknowledged, ""),
            ("failed (refused, nothing written)", ledger.failed, ""),
            ("unknown, committed", ledger.unknown_present, ""),
            ("unknown, not committed", ledger.unknown_absent, ""),
            ("lost (acknowledged, absent)", ledger.lost, "0"),
            ("unexpected (present, never sent)", ledger.unexpected, "0"),
            ("refused yet committed", ledger.refused_present, "0"),
            ("keys with duplicate rows", ledger.duplicates, "0"),
            ("items whose stock does not add up", len(ledger.stock_violations), "0"),
        )
    )
    table = Table(("orders", "count", "must be"), rows, frozenset({1, 2}))
    tone = "pass" if ledger.ok else "fail"
    return [*blocks, para(ledger.explanation + ".", tone=tone), table]


def _errors(stage: StageSample) -> str:
    total = sum(stage.errors.values())
    if not total:
        return "0"
    kinds = sorted(stage.errors.items(), key=lambda kv: -kv[1])
    return f"{total} ({stage.error_rate:.1%}): " + ", ".join(f"{k} {n}" for k, n in kinds)


def _stages(outcome: RampOutcome) -> list[Block]:
    tip = outcome.tipping
    marks = [(tip.onset_index, "onset"), (tip.knee_index, "knee"), (tip.collapse_index, "collapse")]
    dropped = any(s.dropped_rps > 0 for s in outcome.stages)
    headers = [
        "stage",
        "target",
        "offered",
        "achieved",
        "goodput",
        "p50 ms",
        "p95 ms",
        "p99 ms",
        "errors",
        "pool in use",
        "pool waiters",
    ]
    headers += ["dropped"] if dropped else []
    rows = []
    for s in outcome.stages:
        labels = [label for index, label in marks if index == s.index]
        server = s.server
        row: list[Inline] = [
            s.name + (f" ({', '.join(labels)})" if labels else ""),
            *(_rps(v) for v in (s.target_rps, s.offered_rps, s.achieved_rps, s.goodput_rps)),
            *(_ms(v) for v in (s.p50_s, s.p95_s, s.p99_s)),
            _errors(s),
            _NONE if server is None else f"{server.pool_in_use:.1f}/{server.pool_size}",
            _NONE if server is None else f"{server.pool_waiters:.1f}",
        ]
        rows.append(tuple(row + ([_rps(s.dropped_rps)] if dropped else [])))
    numeric = frozenset(range(1, len(headers))) - {8}
    return [Heading("Stages"), Table(tuple(headers), tuple(rows), numeric)]


def _probe(outcome: RampOutcome) -> list[Block]:
    blocks: list[Block] = [Heading("Capacity probe: measured demand per request")]
    probe = outcome.probe
    if probe is None:
        return [*blocks, para("The probe did not run.")]
    rows: tuple[tuple[Inline, ...], ...] = tuple(
        (Code(d.route), f"{d.share:.0%}", *(_ms(v) for v in (d.db_hold_s, d.external_s, d.cpu_s)))
        for d in probe.demands
    )
    headers = ("route", "share", "DB hold ms", "external ms", "CPU ms")
    caps = probe.capacities
    limits = (
        f"Limits: DB pool {caps.pool_size}, external connections {caps.external_connections}, "
        f"CPU cores {caps.cpu_cores:g}, external API "
        + (
            "not measured"
            if caps.external_api_rps is None
            else f"{caps.external_api_rps:.0f} calls/s"
        )
        + "."
    )
    return [*blocks, Table(headers, rows, frozenset({1, 2, 3, 4})), para(limits), *_loaded(probe)]


def _loaded(probe: ProbeResult) -> list[Block]:
    """The loaded stage in a sentence: what it changed against the figures at rest."""
    loaded = probe.loaded
    if loaded is None:
        return [para("No loaded stage: the model uses the figures at rest.")]
    cpu_at_rest = math.fsum(d.share * d.cpu_s for d in probe.at_rest)
    holds = "; ".join(
        f"{d.route} {d.db_hold_s * 1e3:.2f} ms at rest, {loaded.db_hold_s[d.route] * 1e3:.2f} ms"
        for d in probe.at_rest
        if d.route in loaded.db_hold_s
    )
    full = loaded.full
    return [
        para(
            f"Under load (the mix at {loaded.rate_rps:.0f} req/s): CPU {loaded.cpu_s * 1e3:.2f} ms"
            f" per request (at rest {cpu_at_rest * 1e3:.2f} ms), the event loop"
            f" {loaded.loop_utilisation:.0%} busy" + (f"; DB hold {holds}" if holds else "") + "."
        ),
        para(_full_sentence(full, probe.capacities.loop_share)),
    ]


def _full_sentence(full: FullLoop | None, loop_share: float) -> str:
    if full is None:
        return f"The service was not kept full: the CPU's limit uses {loop_share:.2f} of its core."
    kept = (
        f"Kept full ({full.in_flight} requests in flight): {full.rate_rps:.0f} req/s, CPU"
        f" {full.cpu_s * 1e3:.2f} ms per request, {full.service_cores:.2f} of a core"
    )
    if full.loop_bound:
        return (
            f"{kept}; the event loop held it back, so the table's CPU is this one and the"
            f" CPU's capacity {loop_share:.2f} of the core."
        )
    return (
        f"{kept}; {full.holder} held it back, not the loop, so the table's CPU is the one under"
        f" load and the CPU's capacity {loop_share:.2f} of the core."
    )


def content(outcome: RampOutcome, config: dict[str, Any], *, full: bool = False) -> list[Block]:
    """The report in blocks; ``full`` adds the probe and the configuration (for the HTML)."""
    passed = outcome.exit_code is ExitCode.OK
    blocks: list[Block] = [
        Heading(title(config), 1),
        para(verdict(outcome), strong=True, tone="pass" if passed else "fail"),
        para(_run_line(outcome, config)),
    ]
    note = durability_note(config.get("durable_postgres"))
    if note is not None:
        blocks.append(para(note, tone="fail"))
    if outcome.aborted:
        blocks.append(para(f"Stopped early: {outcome.aborted}."))
    blocks += _tipping(outcome) + _prediction(outcome) + _thresholds(outcome) + _faults(outcome)
    blocks += ledger_blocks(outcome.ledger)
    blocks += _stages(outcome)
    blocks += [Heading("Plots"), Images(tuple((cap, f"{name}.png") for name, cap in PLOTS))]
    if full:
        text = json.dumps(config, indent=2, default=str)
        blocks += [*_probe(outcome), Heading("Configuration (secrets redacted)"), Pre(text)]
    return blocks
