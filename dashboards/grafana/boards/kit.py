"""Panel helpers: just the Grafana JSON brink uses, so each dashboard reads as a list of panels.

A panel's queries are ``{legend: PromQL}``. Panels carry their size; :func:`dashboard` lays them
out left to right on Grafana's 24-column grid and numbers them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

Json = dict[str, Any]

DATASOURCE: Json = {"type": "prometheus", "uid": "brink-prometheus"}
SCHEMA_VERSION = 42  # the classic dashboard model of Grafana 12.2+ and 13 (Compose pins 13)
_WIDTH = 24


def _targets(queries: Mapping[str, str], *, instant: bool = False) -> list[Json]:
    return [
        {
            "editorMode": "code",
            "expr": expr,
            "instant": instant,
            "legendFormat": legend,
            "range": not instant,
            "refId": chr(ord("A") + i),
        }
        for i, (legend, expr) in enumerate(queries.items())
    ]


def thresholds(*steps: tuple[str, float | None]) -> Json:
    """Colour steps: ``("green", None), ("red", 0.5)`` is green below 0.5, red from it."""
    return {"mode": "absolute", "steps": [{"color": c, "value": v} for c, v in steps]}


def dashed(legend: str, color: str = "red") -> Json:
    """Override: draw one series as a dashed reference line (a target, a limit, an objective)."""
    return {
        "matcher": {"id": "byName", "options": legend},
        "properties": [
            {"id": "custom.lineStyle", "value": {"dash": [10, 10], "fill": "dash"}},
            {"id": "custom.fillOpacity", "value": 0},
            {"id": "custom.stacking", "value": {"group": "A", "mode": "none"}},
            {"id": "color", "value": {"fixedColor": color, "mode": "fixed"}},
        ],
    }


def right_axis(legend: str, unit: str) -> Json:
    """Override: one series on a right-hand axis with its own unit."""
    return {
        "matcher": {"id": "byName", "options": legend},
        "properties": [
            {"id": "unit", "value": unit},
            {"id": "custom.axisPlacement", "value": "right"},
            {"id": "custom.stacking", "value": {"group": "A", "mode": "none"}},
        ],
    }


def states(*names: tuple[str, str]) -> list[Json]:
    """Value mappings for a gauge that encodes a state: ``("closed", "green")`` for 0, the next
    for 1, ...; Grafana then shows the state's name and colour instead of the number."""
    return [
        {
            "type": "value",
            "options": {
                str(value): {"color": color, "index": value, "text": text}
                for value, (text, color) in enumerate(names)
            },
        }
    ]


def _panel(kind: str, title: str, description: str, w: int, h: int) -> Json:
    return {
        "type": kind,
        "title": title,
        "description": description,
        "datasource": DATASOURCE,
        "gridPos": {"h": h, "w": w},
    }


def timeseries(
    title: str,
    unit: str,
    description: str,
    queries: Mapping[str, str],
    *,
    w: int = 12,
    h: int = 8,
    stack: bool = False,
    log: bool = False,
    max_value: float | None = None,
    overrides: Sequence[Json] = (),
    mappings: Sequence[Json] = (),
) -> Json:
    custom: Json = {
        "drawStyle": "line",
        "fillOpacity": 25 if stack else 8,
        "lineWidth": 2,
        "showPoints": "never",
        "spanNulls": False,
        "stacking": {"group": "A", "mode": "normal" if stack else "none"},
    }
    defaults: Json = {"custom": custom, "unit": unit}
    if log:
        custom["scaleDistribution"] = {"log": 10, "type": "log"}
    else:
        defaults["min"] = 0
    if max_value is not None:
        defaults["max"] = max_value
    if mappings:
        defaults["mappings"] = list(mappings)
    legend = {"calcs": ["lastNotNull", "max"], "displayMode": "table", "placement": "bottom"}
    return _panel("timeseries", title, description, w, h) | {
        "fieldConfig": {"defaults": defaults, "overrides": list(overrides)},
        "options": {
            "legend": legend | {"showLegend": True},
            "tooltip": {"mode": "multi", "sort": "desc"},
        },
        "targets": _targets(queries),
    }


def stat(
    title: str,
    unit: str,
    description: str,
    queries: Mapping[str, str],
    *,
    w: int = 4,
    h: int = 4,
    colors: Json | None = None,
    show_name: bool = False,
) -> Json:
    """Big numbers, the last value of each series; ``show_name`` shows its legend instead
    (a label's value, e.g. the stage's name)."""
    return _panel("stat", title, description, w, h) | {
        "fieldConfig": {
            "defaults": {
                "color": {"mode": "thresholds"},
                "thresholds": colors or thresholds(("blue", None)),
                "unit": unit,
            },
            "overrides": [],
        },
        "options": {
            "colorMode": "background" if colors else "value",
            "graphMode": "none" if show_name else "area",
            "justifyMode": "center",
            "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
            "textMode": "name" if show_name else "value",
        },
        "targets": _targets(queries, instant=show_name),
    }


def text(title: str, markdown: str, *, w: int, h: int) -> Json:
    """Words for the audience: no query, so no unit."""
    return {
        "type": "text",
        "title": title,
        "gridPos": {"h": h, "w": w},
        "options": {"content": markdown, "mode": "markdown"},
    }


def row(title: str) -> Json:
    return {"type": "row", "title": title, "collapsed": False, "panels": [], "gridPos": {"h": 1}}


def _layout(panels: Sequence[Json]) -> list[Json]:
    """Numbers the panels and places them left to right, wrapping; a row takes a whole line."""
    placed: list[Json] = []
    x = y = line_height = 0
    for number, panel in enumerate(panels, start=1):
        w = _WIDTH if panel["type"] == "row" else panel["gridPos"]["w"]
        h = panel["gridPos"]["h"]
        if x + w > _WIDTH or panel["type"] == "row":
            x, y, line_height = 0, y + line_height, 0
        placed.append({"id": number, **panel, "gridPos": {"h": h, "w": w, "x": x, "y": y}})
        x, line_height = x + w, max(line_height, h)
    return placed


def annotation(name: str, expr: str, color: str, title: str, step: str = "5s") -> Json:
    """Marks the graphs at every step where ``expr`` is > 0; Grafana merges consecutive steps
    into one shaded region."""
    return {
        "name": name,
        "datasource": DATASOURCE,
        "enable": True,
        "hide": False,
        "iconColor": color,
        "expr": expr,
        "step": step,
        "target": {"expr": expr, "interval": step, "refId": "Anno"},
        "titleFormat": title,
        "textFormat": "",
        "tagKeys": "",
        "useValueForTime": False,
    }


_BUILT_IN_ANNOTATIONS: Json = {
    "builtIn": 1,
    "datasource": {"type": "grafana", "uid": "-- Grafana --"},
    "enable": True,
    "hide": True,
    "iconColor": "rgba(0, 211, 255, 1)",
    "name": "Annotations & Alerts",
    "type": "dashboard",
}

_LINKS = [
    {
        "asDropdown": False,
        "includeVars": False,
        "keepTime": True,
        "tags": ["brink"],
        "title": "brink",
        "type": "dashboards",
    }
]


def dashboard(
    uid: str,
    title: str,
    description: str,
    panels: Sequence[Json],
    annotations: Sequence[Json] = (),
) -> Json:
    return {
        "uid": uid,
        "title": title,
        "description": description,
        "tags": ["brink"],
        "editable": False,
        "graphTooltip": 1,
        "links": _LINKS,
        "annotations": {"list": [_BUILT_IN_ANNOTATIONS, *annotations]},
        "panels": _layout(panels),
        "refresh": "5s",
        "schemaVersion": SCHEMA_VERSION,
        "templating": {"list": []},
        "time": {"from": "now-15m", "to": "now"},
        "timepicker": {"refresh_intervals": ["5s", "10s", "30s", "1m"]},
        "timezone": "browser",
        "version": 1,
    }
