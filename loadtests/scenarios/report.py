"""A scenario's reports, written into its run folder.

``scenario.json`` holds everything measured (verdict, figures, each phase's stages, per-second
client series, applied faults, configuration); ``summary.md`` puts the verdict first and fits a
CI step summary; ``report.html`` is self-contained (inline CSS, PNGs as data URIs). Plots show
the per-second offered load, goodput, p50 and p99 of each phase over time, with fault windows
shaded; phases side by side when there are few enough to compare at a glance.
"""

from __future__ import annotations

import dataclasses
import io
import json
import math
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from loadtests.plot_kit import COLOURS, DPI, HEIGHT_IN, WIDTH_IN, log_ms
from loadtests.report import redact
from loadtests.report_content import durability_note, ledger_blocks
from loadtests.report_doc import Block, Heading, Images, Pre, Table, para, to_html, to_markdown
from loadtests.samples import StageSample
from loadtests.scenarios.base import Phase, ScenarioOptions, ScenarioResult
from loadtests.series import percentile

SIDE_BY_SIDE_MAX = 4
"""More phases than this get one picture each instead of one row of columns."""
_NONE = "-"
_FAULT_SHADE = "#d62728"
_STAGES_NOTE = (
    "Client figures over each stage's window after its settle time; in flight and pool "
    "waiters are the service's means over the same window."
)


def _jsonable(value: Any) -> Any:
    """Whatever a fault runner recorded, as JSON: dataclasses, mappings, sequences, else str."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return _jsonable(dataclasses.asdict(value))
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if value is None or isinstance(value, bool | int | float | str):
        return value
    to_dict = getattr(value, "to_dict", None)
    return _jsonable(to_dict()) if callable(to_dict) else str(value)


def phase_to_dict(phase: Phase) -> dict[str, Any]:
    return {
        "name": phase.name,
        "labels": dict(phase.labels),
        "started_at": phase.started_at,
        "ended_at": phase.ended_at,
        "aborted": phase.aborted,
        "config": phase.config.to_dict(),
        "stages": [stage.to_dict() for stage in phase.stages],
        "timeline": phase.timeline,
        "faults": _jsonable(phase.faults),
        "fault_windows": [dataclasses.asdict(w) for w in phase.fault_windows],
        "seconds": {str(k): s.to_dict() for k, s in sorted(phase.seconds.items())},
    }


def to_dict(
    result: ScenarioResult,
    options: ScenarioOptions,
    settings: Mapping[str, str],
    exit_code: int,
) -> dict[str, Any]:
    """The whole result as JSON-ready data; secrets in the settings written as ``***``."""
    verdict = result.verdict
    return {
        "scenario": result.name,
        "description": result.description,
        "exit_code": exit_code,
        "verdict": {
            "passed": verdict.passed,
            "label": verdict.label,
            "headline": verdict.headline,
            "figures": {k: (None if math.isnan(v) else v) for k, v in verdict.figures.items()},
        },
        "notes": list(result.notes),
        "options": redact({**dataclasses.asdict(options), "settings": dict(options.settings)}),
        "settings": redact(dict(settings)),
        "phases": [phase_to_dict(phase) for phase in result.phases],
        "ledger": None if result.ledger is None else result.ledger.to_dict(),
    }


# --- what the Markdown and HTML say ----------------------------------------------------------


def _rps(value: float | None) -> str:
    if value is None or math.isnan(value):
        return _NONE
    return f"{value:.1f}" if abs(value) < 10 else f"{value:.0f}"


def _ms(seconds: float | None) -> str:
    return _NONE if seconds is None else f"{seconds * 1000:.0f}"


def _figure(value: float) -> str:
    return _NONE if math.isnan(value) else f"{value:.4g}"


def _stage_row(phase: Phase, stage: StageSample) -> tuple[str, ...]:
    errors = ", ".join(f"{k} {v}" for k, v in sorted(stage.errors.items())) or _NONE
    return (
        phase.name,
        stage.name,
        _rps(stage.target_rps),
        _rps(stage.offered_rps),
        _rps(stage.goodput_rps),
        f"{stage.goodput_ratio:.0%}",
        _ms(stage.p50_s),
        _ms(stage.p95_s),
        _ms(stage.p99_s),
        _NONE if stage.server is None else f"{stage.server.in_flight:.1f}",
        _NONE if stage.server is None else f"{stage.server.pool_waiters:.1f}",
        errors,
    )


def plot_files(result: ScenarioResult) -> list[tuple[str, str]]:
    """(caption, file name) of every picture this result gets."""
    files = []
    if 1 < len(result.phases) <= SIDE_BY_SIDE_MAX:
        files.append(("All phases side by side, per second", "phases.png"))
    for i, phase in enumerate(result.phases):
        files.append((f"Phase {phase.name}, per second", f"phase-{i + 1}-{_slug(phase.name)}.png"))
    return files


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "phase"


def content(result: ScenarioResult, data: Mapping[str, Any], full: bool = False) -> list[Block]:
    """The report in reading order: verdict, figures, notes, stages, pictures (+ config)."""
    verdict = result.verdict
    tone = "pass" if verdict.passed else "fail"
    mark = "PASS" if verdict.passed else "FAIL"
    blocks: list[Block] = [
        Heading(f"brink scenario: {result.name}", 1),
        para(f"{mark}: {verdict.label}", strong=True, tone=tone),
        para(verdict.headline),
        para(result.description),
    ]
    note = durability_note(data.get("options", {}).get("durable_postgres"))
    if note is not None:
        blocks.append(para(note, tone="fail"))
    if verdict.figures:
        figures = tuple((k, _figure(v)) for k, v in verdict.figures.items())
        blocks += [Heading("Figures"), Table(("figure", "value"), figures, frozenset({1}))]
    if result.notes:
        blocks += [Heading("Notes"), *(para(note) for note in result.notes)]
    headers: tuple[str, ...] = ("phase", "stage", "target", "offered", "goodput", "good %")
    headers += ("p50 ms", "p95 ms", "p99 ms", "in flight", "pool waiters", "errors")
    rows = tuple(_stage_row(p, s) for p in result.phases for s in p.stages)
    blocks += [
        Heading("Stages"),
        para(_STAGES_NOTE),
        Table(headers, rows, frozenset(range(2, 11))),
    ]
    aborted = [f"{p.name}: {p.aborted}" for p in result.phases if p.aborted]
    if aborted:
        blocks += [para("Stopped early: " + "; ".join(aborted))]
    blocks += ledger_blocks(result.ledger)
    blocks += [Heading("Per second"), Images(tuple(plot_files(result)))]
    if full:
        config = {"options": data["options"], "settings": data["settings"]}
        blocks += [Heading("Configuration"), Pre(json.dumps(config, indent=2, default=str))]
    return blocks


# --- pictures ------------------------------------------------------------------------------------


def _per_second(phase: Phase) -> dict[str, list[float]]:
    """x (s since the phase started) and the client figures of every second that had any.

    Each second holds the requests that *arrived* in it, however late they finished.
    """
    xs: dict[str, list[float]] = {
        "x": [], "offered": [], "completed": [], "goodput": [], "p50": [], "p99": []
    }  # fmt: skip
    for key in sorted(phase.seconds):
        second = phase.seconds[key]
        xs["x"].append(key - phase.started_at)
        xs["offered"].append(float(second.arrivals + second.dropped))
        xs["completed"].append(float(second.completed))
        xs["goodput"].append(float(second.good))
        for name, q in (("p50", 0.5), ("p99", 0.99)):
            value = percentile(second.latency, q)
            xs[name].append(math.nan if value is None else value * 1000)
    return xs


def _shade_faults(ax: Axes, phase: Phase, right: float) -> None:
    for window in phase.fault_windows:
        end = window.end if window.end is not None else phase.started_at + right
        ax.axvspan(
            window.start - phase.started_at, end - phase.started_at, color=_FAULT_SHADE, alpha=0.12
        )


def _draw_phase(rates: Axes, latency: Axes, phase: Phase, slo_s: float) -> None:
    data = _per_second(phase)
    right = max(data["x"], default=1.0)
    rates.plot(data["x"], data["offered"], color=COLOURS["offered"], label="offered /s")
    rates.plot(data["x"], data["completed"], color=COLOURS["achieved"], ls="--", lw=1,
               label="completed /s (any outcome)")  # fmt: skip
    rates.plot(data["x"], data["goodput"], color=COLOURS["goodput"], label="goodput /s")
    latency.plot(data["x"], data["p50"], color=COLOURS["achieved"], label="p50")
    latency.plot(data["x"], data["p99"], color=COLOURS["collapse"], label="p99")
    latency.axhline(slo_s * 1000, color=COLOURS["grey"], ls="--", lw=1, label="SLO")
    for ax in (rates, latency):
        _shade_faults(ax, phase, right)
        for entry in phase.timeline[1:]:
            ax.axvline(entry["start"] - phase.started_at, color="#bbbbbb", lw=0.8, zorder=0)
        ax.grid(True, alpha=0.3)
    if phase.fault_windows:
        rates.axvspan(0, 0, color=_FAULT_SHADE, alpha=0.12, label="fault applied")
    preset = phase.labels.get("preset")
    rates.set_title(phase.name + (f" ({preset})" if preset else ""), fontsize=10)
    if any(not math.isnan(v) and v > 0 for v in data["p50"] + data["p99"]):
        log_ms(latency)
    latency.set_xlabel("seconds since the phase started")


def phases_figure(phases: Sequence[Phase], slo_s: float) -> Figure:
    """Rates (top) and latency (bottom) per second, one column per phase, shared y axes."""
    columns = max(1, len(phases))
    fig = Figure(figsize=(max(WIDTH_IN, 4.5 * columns), HEIGHT_IN * 1.4), dpi=DPI)
    fig.set_layout_engine("constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(2, columns, sharey="row", squeeze=False)
    for column, phase in enumerate(phases):
        _draw_phase(axes[0][column], axes[1][column], phase, slo_s)
    axes[0][0].set_ylim(bottom=0)  # after every column drew: a shared axis, autoscaled to all
    axes[0][0].set_ylabel("requests per second")
    axes[1][0].set_ylabel("latency (ms)")
    axes[0][0].legend(fontsize=8, loc="upper left")
    axes[1][0].legend(fontsize=8, loc="upper left")
    return fig


def _png(fig: Figure) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI)
    return buffer.getvalue()


def write_reports(
    result: ScenarioResult,
    run_dir: Path,
    options: ScenarioOptions,
    settings: Mapping[str, str],
    exit_code: int,
) -> dict[str, Path]:
    """Write ``scenario.json``, ``summary.md``, the PNGs and ``report.html``; paths by name."""
    run_dir.mkdir(parents=True, exist_ok=True)
    data = to_dict(result, options, settings, exit_code)
    paths: dict[str, Path] = {}
    images: dict[str, bytes] = {}
    files = plot_files(result)
    pictures = [list(result.phases)] if files and files[0][1] == "phases.png" else []
    pictures += [[phase] for phase in result.phases]
    for (_, file), phases in zip(files, pictures, strict=True):
        images[file] = _png(phases_figure(phases, options.slo_s))
        paths[file] = run_dir / file
        paths[file].write_bytes(images[file])
    paths["json"] = run_dir / "scenario.json"
    paths["json"].write_text(json.dumps(data, indent=2, default=str) + "\n")
    paths["summary"] = run_dir / "summary.md"
    paths["summary"].write_text(to_markdown(content(result, data)))
    paths["html"] = run_dir / "report.html"
    page = to_html(f"brink scenario: {result.name}", content(result, data, full=True), images)
    paths["html"].write_text(page)
    return paths
