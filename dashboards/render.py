"""Draw the overview dashboard's main panels to PNG from Prometheus, as Grafana shows them.

    .venv/bin/python -m dashboards.render --prometheus http://127.0.0.1:9090 \\
        --start 2026-11-27T10:00:00 --end 2026-11-27T10:01:30 --out docs/img

Queries, units, log scales, dashed reference lines, right-hand axes and both annotations (stage
changes, past the knee) are read from the dashboard JSON, so the picture shows what Grafana
shows for the same data. Writes ``overview.png`` (the four panels) and one PNG per panel.
Agg canvas and the Figure API only: no pyplot, no process-wide backend.
"""

from __future__ import annotations

import argparse
import math
import re
import sys
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter, PercentFormatter

from dashboards.panels import Line, Marks, annotation_marks, panel_lines
from dashboards.queries import Json, PrometheusApi, load_dashboard

OVERVIEW = "brink-overview"
MAIN_PANELS = (
    "Load: offered, achieved, goodput",
    "Latency the users see",
    "In flight: the queue grows",
    "DB pool: utilisation and waiters",
)
_PALETTE = ("#1f77b4", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#d62728", "#17becf")
_NAMED = {"text": "#444444", "red": "#d62728", "orange": "#ff7f0e", "blue": "#1f4e9c"}
_UNIT_LABEL = {"reqps": "req/s", "ops": "ops/s", "s": "", "short": "", "percentunit": ""}


def _format_value(value: float, unit: str) -> str:
    """``value`` as the panel's unit shows it: 0.25 s -> "250 ms", 0.93 -> "93%"."""
    if unit == "s":
        return f"{value * 1000:.3g} ms" if abs(value) < 1 else f"{value:.3g} s"
    if unit == "percentunit":
        return f"{value * 100:.0f}%"
    suffix = {"reqps": " req/s", "ops": " ops/s"}.get(unit, "")
    return f"{value:,.3g}{suffix}" if abs(value) < 1000 else f"{value:,.0f}{suffix}"


def _format_axis(ax: Axes, unit: str, log: bool) -> None:
    if log:
        ax.set_yscale("log")
        ax.yaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
        ax.yaxis.set_minor_formatter(NullFormatter())
    if unit == "percentunit":
        ax.yaxis.set_major_formatter(PercentFormatter(xmax=1, decimals=0))
    elif unit == "s":
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: _format_value(v, "s")))
    ax.set_ylabel(_UNIT_LABEL.get(unit, unit))


def _plot(ax: Axes, lines: Sequence[Line], unit: str) -> Axes | None:
    """Draw the lines, dashed ones as reference lines; returns the right-hand axes if any."""
    right_ax: Axes | None = None
    colours = iter(_PALETTE)
    for line in lines:
        target, line_unit = ax, unit
        if line.right_unit is not None:
            right_ax = right_ax or ax.twinx()
            target, line_unit = right_ax, line.right_unit
        finite = [v for v in line.values if math.isfinite(v)]
        peak = f"  max {_format_value(max(finite), line_unit)}" if finite else ""
        target.plot(
            line.times,
            line.values,
            label=f"{line.name}{' (right)' if target is right_ax else ''}{peak}",
            color=_NAMED.get(line.dashed or "") or next(colours, "#333333"),
            lw=1.4 if line.dashed else 1.8,
            ls=(0, (6, 4)) if line.dashed else "-",
        )
        if target is right_ax:
            _format_axis(target, line_unit, log=False)
            target.set_ylim(bottom=0)
    return right_ax


def _mark(ax: Axes, marks: Marks, top: bool) -> None:
    """Red regions past the knee; blue lines at stage changes, named on the top row."""
    for begin, finish in marks.regions:
        ax.axvspan(begin, finish, color="#d62728", alpha=0.12, lw=0, zorder=0)
    for t, title in marks.titled:
        ax.axvline(t, color=_NAMED["blue"], lw=0.8, alpha=0.6, zorder=0)
        if top:
            ax.annotate(
                re.sub(r"^.*?:\s*|\s*\(.*\)", "", title),  # "stage: step 1 (60 req/s)"
                xy=(t, 1.0),
                xycoords=ax.get_xaxis_transform(),
                xytext=(2, 2),
                textcoords="offset points",
                fontsize=7.5,
                color=_NAMED["blue"],
                rotation=30,
            )


def draw_panel(ax: Axes, panel: Json, lines: Sequence[Line], marks: Marks, top: bool) -> None:
    """One timeseries panel: its lines, axes, limits and legend, the annotations behind."""
    defaults = panel["fieldConfig"]["defaults"]
    log = defaults["custom"].get("scaleDistribution", {}).get("type") == "log"
    right_ax = _plot(ax, lines, defaults["unit"])
    _format_axis(ax, defaults["unit"], log)
    if not log:
        ax.set_ylim(bottom=defaults.get("min", 0))
    if "max" in defaults:
        ax.set_ylim(top=defaults["max"])
    _mark(ax, marks, top)
    ax.set_title(panel["title"], loc="left", fontsize=11, fontweight="bold", pad=24 if top else 6)
    ax.grid(True, alpha=0.3)
    ax.set_xlabel("seconds since the start")
    handles, labels = ax.get_legend_handles_labels()
    if right_ax is not None:
        more_handles, more_labels = right_ax.get_legend_handles_labels()
        handles, labels = handles + more_handles, labels + more_labels
    ax.legend(
        handles,
        labels,
        loc="upper center",
        bbox_to_anchor=(0.5, -0.16),
        ncols=3,
        fontsize=8,
        frameon=False,
    )


def _figure(width: float, height: float, rows: int, cols: int) -> tuple[Figure, list[Axes]]:
    fig = Figure(figsize=(width, height), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    grid = fig.subplots(rows, cols, squeeze=False)
    return fig, [ax for row in grid for ax in row]


def _slug(title: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")


def render_overview(prometheus: str, start: float, end: float, out_dir: Path) -> list[Path]:
    """Write ``overview.png`` and one PNG per main panel of the overview; returns the paths."""
    board = load_dashboard(OVERVIEW)
    panels = {panel["title"]: panel for panel in board["panels"]}
    missing = [title for title in MAIN_PANELS if title not in panels]
    if missing:
        raise ValueError(f"{OVERVIEW} has no panel {', '.join(missing)}")
    api = PrometheusApi(prometheus)
    try:
        marks = annotation_marks(api, board, start, end)
        data = [(panels[t], panel_lines(api, OVERVIEW, panels[t], start, end)) for t in MAIN_PANELS]
    finally:
        api.close()
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    fig, axes = _figure(15, 9.5, 2, 2)
    for i, (ax, (panel, lines)) in enumerate(zip(axes, data, strict=True)):
        draw_panel(ax, panel, lines, marks, top=i < 2)
    when = datetime.fromtimestamp(start).astimezone()
    fig.suptitle(
        f"{board['title']}: {when:%Y-%m-%d %H:%M:%S %Z}, {end - start:.0f} s "
        "(blue: stage changes, red: past the knee)",
        fontsize=12,
    )
    written.append(out_dir / "overview.png")
    fig.savefig(written[-1])
    for panel, lines in data:
        fig, (ax,) = _figure(9, 5, 1, 1)
        draw_panel(ax, panel, lines, marks, top=True)
        written.append(out_dir / f"{_slug(panel['title'])}.png")
        fig.savefig(written[-1])
    return written


def _time(text: str) -> float:
    """Unix seconds, or an ISO 8601 time (local time when it has no offset)."""
    try:
        return float(text)
    except ValueError:
        return datetime.fromisoformat(text).timestamp()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m dashboards.render",
        description="Render the overview dashboard's main panels to PNG from Prometheus.",
    )
    parser.add_argument("--prometheus", required=True, help="e.g. http://127.0.0.1:9090")
    parser.add_argument("--start", required=True, type=_time, help="unix seconds or ISO 8601")
    parser.add_argument("--end", required=True, type=_time, help="unix seconds or ISO 8601")
    parser.add_argument("--out", required=True, type=Path, help="directory for the PNGs")
    args = parser.parse_args(argv)
    if args.end <= args.start:
        parser.error("--end must be after --start")
    for path in render_overview(args.prometheus, args.start, args.end, args.out):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
