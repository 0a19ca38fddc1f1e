"""The three pictures of one ramp: throughput, latency and saturation against the offered load.

Pure functions ``(outcome) -> Figure``. Each builds a :class:`~matplotlib.figure.Figure` with an
Agg canvas of its own, so nothing touches pyplot's global state or the process-wide backend.
Save with ``fig.savefig(path)``. How the x axis is chosen: :mod:`loadtests.plot_kit`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from matplotlib.axes import Axes
from matplotlib.figure import Figure

from loadtests.outcome import RampOutcome
from loadtests.plot_kit import (
    COLOURS,
    LoadAxis,
    Mark,
    draw_marks,
    figure,
    log_ms,
    nan,
    series,
    title,
)
from loadtests.samples import ServerSample, StageSample


def slo_seconds(config: dict[str, Any]) -> float | None:
    """The SLO from a ramp's config (``slo_s``, else ``slo_ms``), or None when it has none."""
    for key, scale in (("slo_s", 1.0), ("slo_ms", 1e-3)):
        value = config.get(key)
        if isinstance(value, int | float) and not isinstance(value, bool) and value > 0:
            return float(value) * scale
    return None


def _knee_text(outcome: RampOutcome) -> str:
    tip = outcome.tipping
    if tip.knee_rps is None:
        return "no knee: even the lowest load failed"
    if tip.knee_is_lower_bound:
        return f"knee ≥ {tip.knee_rps:.0f} req/s (never pushed past)"
    return f"knee {tip.knee_rps:.0f} req/s"


def _marks(outcome: RampOutcome, axis: LoadAxis, *, onset: bool = False) -> list[Mark]:
    """The knee with the predicted saturation (or with the latency onset), left to right."""
    tip, pred = outcome.tipping, outcome.prediction
    marks = []
    knee_x = axis.at_index(tip.knee_index)
    if knee_x is not None:
        marks.append(Mark(knee_x, _knee_text(outcome), COLOURS["knee"]))
    onset_x = axis.at_index(tip.onset_index)
    if onset and onset_x is not None and tip.onset_rps is not None:
        marks.append(Mark(onset_x, f"onset {tip.onset_rps:.0f} req/s", COLOURS["onset"], ":"))
    elif not onset and pred is not None and axis.by_load and pred.saturation_rps <= axis.right:
        text = f"predicted {pred.saturation_rps:.0f} req/s ({pred.bottleneck})"
        marks.append(Mark(pred.saturation_rps, text, COLOURS["predicted"]))
    return sorted(marks, key=lambda m: m.x)


def _notes(ax: Axes, axis: LoadAxis, outcome: RampOutcome) -> None:
    """Legend-only entries for what has no vertical line: no knee, a prediction off the axis."""
    if outcome.tipping.knee_index is None:
        ax.plot([], [], ls="none", label=_knee_text(outcome))
    pred = outcome.prediction
    if pred is None:
        return
    text = f"predicted saturation {pred.saturation_rps:.0f} req/s ({pred.bottleneck})"
    if not axis.by_load:
        ax.axhline(pred.saturation_rps, color=COLOURS["predicted"], ls="--", label=text)
    elif pred.saturation_rps > axis.right:
        ax.plot([], [], color=COLOURS["predicted"], ls="--", label=text + ", off the chart")


def _collapse(ax: Axes, axis: LoadAxis, outcome: RampOutcome) -> None:
    """A red cross on the collapsed stage's goodput, its figures written beside it."""
    at = next((s for s in outcome.stages if s.index == outcome.tipping.collapse_index), None)
    if at is None:
        return
    x, y = axis.x(at), at.goodput_rps
    ax.plot([x], [y], "X", ms=13, color=COLOURS["collapse"], label="collapse", zorder=5)
    (x0, x1), (_, y1) = ax.get_xlim(), ax.get_ylim()
    right_half, low = (x - x0) / (x1 - x0) > 0.5, y < 0.3 * y1
    ax.annotate(
        f"collapse: goodput {y:.0f}/s\nat {at.offered_rps:.0f} req/s offered",
        xy=(x, y),
        xytext=(-14 if right_half else 14, 22 if low else -36),
        textcoords="offset points",
        ha="right" if right_half else "left",
        fontsize=9,
        color=COLOURS["collapse"],
    )


def throughput_plot(outcome: RampOutcome) -> Figure:
    """Target, offered, achieved and goodput by load, with the knee, prediction and collapse."""
    fig, (ax,) = figure()
    axis = LoadAxis.of(outcome.stages)
    marks = _marks(outcome, axis)
    right = axis.dress(ax, marks)
    ax.set_ylabel("throughput (req/s)")
    if outcome.stages and axis.by_load:
        ax.plot(
            [0, right],
            [0, right],
            color=COLOURS["target"],
            ls="--",
            lw=1,
            label="target (y = x: all asked for, served)",
        )
    elif outcome.stages:
        series(ax, axis, lambda s: s.target_rps, "target", COLOURS["target"], ls="--")
    lines: list[tuple[Callable[[StageSample], float | None], str, str, dict[str, Any]]] = [
        (
            lambda s: s.offered_rps,
            "offered (sent)",
            "offered",
            {"marker": "s", "markersize": 6, "mfc": "none", "lw": 1},
        ),
        (lambda s: s.achieved_rps, "achieved (completed)", "achieved", {}),
        (lambda s: s.goodput_rps, "goodput (ok within SLO)", "goodput", {"lw": 2.4}),
    ]
    for value, label, colour, style in lines:
        series(ax, axis, value, label, COLOURS[colour], **style)
    ax.set_ylim(bottom=0)
    _collapse(ax, axis, outcome)
    _notes(ax, axis, outcome)
    rows = draw_marks(ax, marks)
    title(ax, "The knee: where goodput stops following the offered load", rows)
    axis.legend(ax)
    return fig


def _ms(value: float | None) -> float | None:
    return None if value is None or value <= 0 else value * 1000.0


def latency_plot(outcome: RampOutcome) -> Figure:
    """p50, p95 and p99 (ms, log scale) by load, with the SLO, the onset and the knee."""
    fig, (ax,) = figure()
    axis = LoadAxis.of(outcome.stages)
    marks = _marks(outcome, axis, onset=True)
    axis.dress(ax, marks)
    ax.set_ylabel("latency (ms, log scale)")
    log_ms(ax)
    series(ax, axis, lambda s: _ms(s.p50_s), "p50", COLOURS["offered"])
    series(ax, axis, lambda s: _ms(s.p95_s), "p95", COLOURS["achieved"], lw=2.4)
    series(ax, axis, lambda s: _ms(s.p99_s), "p99", COLOURS["collapse"])
    slo = slo_seconds(outcome.config)
    if slo is not None:
        label = f"SLO {slo * 1000:g} ms (p95 must stay under)"
        ax.axhline(slo * 1000, color=COLOURS["grey"], ls="-.", lw=1.2, label=label)
    if outcome.tipping.knee_index is None:
        ax.plot([], [], ls="none", label=_knee_text(outcome))
    rows = draw_marks(ax, marks)
    title(ax, "Latency: flat, then the queue builds; past the knee p95 crosses the SLO", rows)
    axis.legend(ax)
    return fig


def _server(get: Callable[[ServerSample], float]) -> Callable[[StageSample], float | None]:
    return lambda s: None if s.server is None else get(s.server)


def saturation_plot(outcome: RampOutcome) -> Figure:
    """The DB pool filling up (top), then the queues in front of it growing (bottom)."""
    fig, (pool, queues) = figure(rows=2, height=6.0)
    pred = outcome.prediction
    if pred is None or pred.bottleneck == "db_pool":
        fig.suptitle("Saturation: the DB pool fills up (top), then requests queue for it (bottom)")
    else:
        name = pred.bottleneck.replace("_", " ")
        fig.suptitle(f"Saturation: the {name} limits first; the DB pool (top), the queues (bottom)")
    axis = LoadAxis.of(outcome.stages)
    marks = _marks(outcome, axis)
    for ax in (pool, queues):
        axis.dress(ax, marks)
    pool.set_xlabel("")
    pool.set_ylabel("DB connections (mean)")
    queues.set_ylabel("requests (mean)")
    draw_marks(pool, marks)
    draw_marks(queues, marks, tags=False)
    if not any(s.server is not None for s in outcome.stages):
        for ax in (pool, queues):
            ax.text(
                0.5,
                0.5,
                "no server-side samples (the service's /metrics was not read)",
                transform=ax.transAxes,
                ha="center",
                va="center",
                color="#666666",
                bbox={"fc": "white", "ec": "none"},
            )
        return fig
    size = _server(lambda v: float(v.pool_size))
    in_use = _server(lambda v: v.pool_in_use)
    series(pool, axis, size, "pool size", COLOURS["grey"], ls="--", marker="")
    series(pool, axis, in_use, "connections in use", COLOURS["offered"], lw=2.4)
    for value, label, colour, width in (
        (_server(lambda v: v.in_flight), "in flight in the service", "offered", 1.5),
        (_server(lambda v: v.pool_waiters), "waiting for a DB connection", "collapse", 2.4),
        (_server(lambda v: v.external_in_flight), "external calls in flight", "predicted", 1.5),
    ):
        series(queues, axis, value, label, COLOURS[colour], lw=width)
    peak = max(max(nan(size(s)), nan(in_use(s))) for s in outcome.stages if s.server)
    pool.set_ylim(0, max(peak, 1.0) * 1.2)
    queues.set_ylim(bottom=0)
    for ax in (pool, queues):
        axis.legend(ax)
    return fig
