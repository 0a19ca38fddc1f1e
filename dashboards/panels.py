"""What a dashboard panel shows over a time range: its series, named and styled, and the marks.

Reads a panel's queries, overrides and the dashboard's annotations from the JSON and asks
Prometheus for the data the way Grafana would (:mod:`dashboards.queries`); the result is plain
data that :mod:`dashboards.render` draws.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from dashboards.queries import (
    SCRAPE_S,
    Json,
    PrometheusApi,
    annotation_queries,
    legend_labels,
    legend_text,
    panel_queries,
)

STEP_S = SCRAPE_S
"""Grafana's step for a run of a few minutes: the datasource's timeInterval, its floor."""


@dataclass(frozen=True)
class Line:
    """One series of a panel, ready to draw (times in seconds since the start)."""

    name: str
    times: tuple[float, ...]
    values: tuple[float, ...]
    dashed: str | None = None
    """The override's colour when the series is a dashed reference line."""
    right_unit: str | None = None
    """The unit of the right-hand axis when an override puts it there."""


@dataclass(frozen=True)
class Marks:
    """The dashboard's annotations: titled marks ``(t, title)``, e.g. stage changes, and
    regions ``(from, to)``, e.g. past the knee."""

    titled: tuple[tuple[float, str], ...] = ()
    regions: tuple[tuple[float, float], ...] = ()


def _overrides(panel: Json) -> tuple[dict[str, str], dict[str, str]]:
    """Legend -> colour of dashed series, legend -> unit of right-axis series."""
    dashed, right = {}, {}
    for override in panel["fieldConfig"]["overrides"]:
        name = override["matcher"]["options"]
        props = {p["id"]: p["value"] for p in override["properties"]}
        if "custom.lineStyle" in props:
            dashed[name] = props.get("color", {}).get("fixedColor", "text")
        if props.get("custom.axisPlacement") == "right":
            right[name] = props.get("unit", "short")
    return dashed, right


def _with_gaps(
    times: Sequence[float], values: Sequence[float], step_s: float
) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Insert a NaN where samples are missing, so a line breaks like Grafana's (no spanNulls)."""
    t_out: list[float] = []
    v_out: list[float] = []
    for t, v in zip(times, values, strict=True):
        if t_out and t - t_out[-1] > 1.5 * step_s:
            t_out.append(t_out[-1] + step_s)
            v_out.append(math.nan)
        t_out.append(t)
        v_out.append(v)
    return tuple(t_out), tuple(v_out)


def panel_lines(api: PrometheusApi, uid: str, panel: Json, start: float, end: float) -> list[Line]:
    """Every series of ``panel``'s queries over ``[start, end]``, named by its legend."""
    dashed, right = _overrides(panel)
    lines = []
    for query in panel_queries(uid, panel):
        for series in api.evaluate(query, start, end, STEP_S):
            name = legend_text(query.legend, series.labels)
            times, values = _with_gaps([t - start for t in series.times], series.values, STEP_S)
            lines.append(Line(name, times, values, dashed.get(name), right.get(name)))
    return lines


def annotation_marks(api: PrometheusApi, board: Json, start: float, end: float) -> Marks:
    """Where each annotation query is > 0: a titled one (``stage: {{stage}}``) marks the first
    time of each title; an untitled one marks regions, consecutive steps merged as in Grafana."""
    titled: list[tuple[float, str]] = []
    regions: list[tuple[float, float]] = []
    for query in annotation_queries(board):
        step = query.step_s or STEP_S
        for series in api.evaluate(query, start, end, STEP_S):
            hits = [t - start for t, v in zip(series.times, series.values, strict=True) if v > 0]
            if legend_labels(query.legend):
                title = legend_text(query.legend, series.labels)
                if hits and title not in {name for _, name in titled}:
                    titled.append((hits[0], title))
                continue
            for t in hits:
                if regions and t - regions[-1][1] <= step * 1.01:
                    regions[-1] = (regions[-1][0], t)
                else:
                    regions.append((t - step, t))
    return Marks(tuple(sorted(titled)), tuple(regions))
