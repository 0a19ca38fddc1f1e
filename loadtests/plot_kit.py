"""Drawing helpers shared by :mod:`loadtests.plots`: the x axis, lines, markers and tags.

The x axis is the load the profile asked for (``target_rps``): it is what the operator controls,
and it stays in order when the generator falls behind (the measured offered rate then sags
below the diagonal, which is worth seeing). The way up is drawn solid; stages after the peak
(a ramp that steps back down) hollow and dotted. A profile with fewer than three distinct rates
(a soak) is drawn against the stage number instead, with sparse stage names as ticks.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

from loadtests.samples import StageSample
from loadtests.tipping import ramp_up

WIDTH_IN, HEIGHT_IN, DPI = 9.0, 5.0, 100
COLOURS = {
    "target": "#7f7f7f",
    "offered": "#1f77b4",
    "achieved": "#ff7f0e",
    "goodput": "#2ca02c",
    "knee": "#222222",
    "predicted": "#9467bd",
    "collapse": "#d62728",
    "onset": "#8c564b",
    "grey": "#444444",
}
_MAX_TICKS = 10
_CHAR = 0.0082
"""Rough width of one 9 pt bold character as a share of the axes' width at 900 px."""
_ROW_PT = 13


def figure(rows: int = 1, height: float = HEIGHT_IN) -> tuple[Figure, list[Axes]]:
    """A figure with its own Agg canvas (no pyplot, no global backend) and ``rows`` axes."""
    fig = Figure(figsize=(WIDTH_IN, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(rows, 1, sharex=True, squeeze=False)
    return fig, [row[0] for row in axes]


@dataclass(frozen=True)
class LoadAxis:
    """Where each stage sits on the x axis: its target rate, or its place in the run."""

    by_load: bool
    stages: tuple[StageSample, ...]
    way_up: int
    """How many stages (in run order) lead up to the peak; the rest come after it."""

    @classmethod
    def of(cls, stages: Sequence[StageSample]) -> LoadAxis:
        by_load = len({s.target_rps for s in stages}) >= 3
        way_up = len(ramp_up(stages)) if by_load else len(stages)
        return cls(by_load, tuple(stages), way_up)

    @property
    def top(self) -> float:
        """The highest x of any stage."""
        return max((self.x(s) for s in self.stages), default=1.0)

    @property
    def right(self) -> float:
        """How far right a mark may sit before it is listed as off the chart instead."""
        return 1.6 * self.top

    def x(self, stage: StageSample) -> float:
        return stage.target_rps if self.by_load else float(stage.index)

    def at_index(self, index: int | None) -> float | None:
        found = next((s for s in self.stages if s.index == index), None)
        return None if found is None else self.x(found)

    def dress(self, ax: Axes, marks: Sequence[Mark] = ()) -> float:
        """Label, grid and limits (from 0 by load); stage names as ticks by stage.

        Returns the right edge of the x axis.
        """
        ax.grid(True, alpha=0.3)
        if self.by_load:
            ax.set_xlabel("offered load: rate the profile asked for (req/s)")
            right = max([self.top, *(m.x for m in marks)]) * 1.05
            ax.set_xlim(0, right)
            return right
        ax.set_xlabel("stage (run order)")
        xs = [self.x(s) for s in self.stages] or [0.0]
        ax.set_xlim(min(xs) - 0.5, max(xs) + 0.5)
        shown = self.stages[:: max(1, math.ceil(len(self.stages) / _MAX_TICKS))]
        ax.set_xticks([self.x(s) for s in shown], [s.name for s in shown], rotation=30)
        return max(xs) + 0.5

    def legend(self, ax: Axes) -> None:
        """The legend, with a key to the hollow markers when stages came after the peak."""
        if self.way_up < len(self.stages):
            ax.plot(
                [],
                [],
                ls=":",
                marker="o",
                mfc="white",
                color=COLOURS["grey"],
                label="hollow, dotted: after the peak",
            )
        ax.legend(loc="upper left" if self.by_load else "best", fontsize=9, framealpha=0.9)


def nan(value: float | None) -> float:
    return math.nan if value is None else value


def series(
    ax: Axes,
    axis: LoadAxis,
    value: Callable[[StageSample], float | None],
    label: str,
    colour: str,
    **style: Any,
) -> None:
    """One line: solid on the way up, hollow markers and dotted after the peak."""
    style = {"marker": "o", "markersize": 4, **style}
    up, after = axis.stages[: axis.way_up], axis.stages[max(axis.way_up - 1, 0) :]
    xs, ys = [axis.x(s) for s in up], [nan(value(s)) for s in up]
    ax.plot(xs, ys, color=colour, label=label, **style)
    if len(after) > 1:
        style.update(mfc="white", ls=":")
        ax.plot([axis.x(s) for s in after], [nan(value(s)) for s in after], color=colour, **style)


def log_ms(ax: Axes) -> None:
    """A log y axis ticked at 1-2-5 steps and written as plain numbers (20, 500, 2,000)."""
    ax.set_yscale("log")
    ax.yaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.12g}"))
    ax.yaxis.set_minor_formatter(NullFormatter())


@dataclass(frozen=True)
class Mark:
    """A vertical line at ``x`` with its value written above the frame."""

    x: float
    text: str
    colour: str
    style: str = "--"


def _spans(marks: Sequence[Mark], lo: float, hi: float) -> list[tuple[str, int]]:
    """Alignment and row of each tag: facing apart, inside the frame, not overlapping if room."""
    placed: list[tuple[float, float, int]] = []
    result: list[tuple[str, int]] = []
    for i, mark in enumerate(marks):
        at, width = (mark.x - lo) / (hi - lo), len(mark.text) * _CHAR
        order = ("center", "right", "left") if len(marks) == 1 else ("left", "right", "center")
        if len(marks) > 1 and i == 0:
            order = ("right", "left", "center")
        offsets = {"left": 0.0, "right": width, "center": width / 2}
        choices = [(row, ha) for row in range(len(marks)) for ha in order]
        for row, ha in choices:
            start = at - offsets[ha]
            fits = start >= -0.01 and start + width <= 1.01
            free = all(r != row or e < start or start + width < s for s, e, r in placed)
            if fits and free:
                break
        placed.append((start, start + width, row))
        result.append((ha, row))
    return result


def draw_marks(ax: Axes, marks: Sequence[Mark], *, tags: bool = True) -> int:
    """Vertical lines, and with ``tags`` their values above the frame; returns the tag rows."""
    for mark in marks:
        ax.axvline(mark.x, color=mark.colour, ls=mark.style, lw=1.5, zorder=1)
    if not tags or not marks:
        return 0
    lo, hi = ax.get_xlim()
    spans = _spans(marks, lo, hi)
    for mark, (ha, row) in zip(marks, spans, strict=True):
        ax.annotate(
            mark.text,
            xy=(mark.x, 1.0),
            xycoords=ax.get_xaxis_transform(),
            xytext=(0, 3 + _ROW_PT * row),
            textcoords="offset points",
            ha=ha,
            va="bottom",
            fontsize=9,
            color=mark.colour,
            fontweight="bold",
        )
    return 1 + max(row for _, row in spans)


def title(ax: Axes, text: str, rows: int) -> None:
    """The axes' title, lifted above ``rows`` rows of tags."""
    ax.set_title(text, pad=6 + _ROW_PT * rows)
