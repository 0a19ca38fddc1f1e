"""The dashboards' queries as Grafana sends them, evaluated over a time range by Prometheus.

Reads the generated dashboard JSON (``grafana/dashboards/*.json``), so what is evaluated here is
exactly what Grafana shows: every panel target and every annotation, with Grafana's
``$__interval`` and ``$__rate_interval`` filled in the way Grafana fills them.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import httpx2

from loadtests.native.prometheus import SCRAPE_INTERVAL

DASHBOARDS_DIR = Path(__file__).resolve().parent / "grafana" / "dashboards"
SCRAPE_S = float(SCRAPE_INTERVAL.removesuffix("s"))
"""Prometheus' scrape interval, and the datasource's ``timeInterval`` (a unit test pins both)."""
_LEGEND_LABEL = re.compile(r"\{\{\s*(\w+)\s*\}\}")
_UNIT_S = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}

Json = dict[str, Any]


def load_dashboard(uid: str) -> Json:
    """The dashboard ``uid`` as written by ``grafana/build.py``."""
    board: Json = json.loads((DASHBOARDS_DIR / f"{uid}.json").read_text("utf-8"))
    return board


def dashboard_uids() -> list[str]:
    """Every generated dashboard's uid."""
    return sorted(path.stem for path in DASHBOARDS_DIR.glob("*.json"))


def rate_interval_s(step_s: float) -> float:
    """Grafana's ``$__rate_interval``: max(interval + scrape interval, 4 x scrape interval)."""
    return max(step_s + SCRAPE_S, 4 * SCRAPE_S)


def grafana_expr(expr: str, step_s: float) -> str:
    """``expr`` with Grafana's interval variables replaced for a query at ``step_s``."""
    interval = max(step_s, SCRAPE_S)  # the datasource's timeInterval is the floor
    return expr.replace("$__rate_interval", f"{rate_interval_s(interval):g}s").replace(
        "$__interval", f"{interval:g}s"
    )


def _seconds(duration: str) -> float:
    """``"5s"`` -> 5.0 (a Grafana duration as the dashboards write them)."""
    match = re.fullmatch(r"(\d+(?:\.\d+)?)(ms|s|m|h)", duration)
    if match is None:
        raise ValueError(f"not a Grafana duration: {duration!r}")
    return float(match[1]) * _UNIT_S[match[2]]


@dataclass(frozen=True)
class Query:
    """One query of a dashboard: a panel's target, or an annotation."""

    dashboard: str
    panel: str
    legend: str
    """The target's legendFormat; an annotation's titleFormat."""
    expr: str
    kind: Literal["panel", "annotation"]
    step_s: float | None = None
    """An annotation's own step; None: the panel's (the caller's) step."""

    def __str__(self) -> str:
        return f"{self.dashboard} / {self.panel} / {self.legend}"


def panel_queries(uid: str, panel: Json) -> list[Query]:
    """The targets of one panel of dashboard ``uid``."""
    return [
        Query(uid, panel["title"], target["legendFormat"], target["expr"], "panel")
        for target in panel.get("targets", [])
    ]


def annotation_queries(board: Json) -> list[Query]:
    """The Prometheus annotations of ``board`` (Grafana's built-in one has no query)."""
    return [
        Query(
            board["uid"],
            annotation["name"],
            annotation["titleFormat"],
            annotation["expr"],
            "annotation",
            _seconds(annotation["step"]),
        )
        for annotation in board["annotations"]["list"]
        if "expr" in annotation
    ]


def dashboard_queries(board: Json) -> Iterator[Query]:
    """Every panel target and every annotation of ``board``, in dashboard order."""
    for panel in board["panels"]:
        yield from panel_queries(board["uid"], panel)
    yield from annotation_queries(board)


def legend_labels(legend: str) -> set[str]:
    """The label names a legend format such as ``{{route}} {{status}}`` refers to."""
    return set(_LEGEND_LABEL.findall(legend))


def legend_text(legend: str, labels: Mapping[str, str]) -> str:
    """A series' name as Grafana writes it: ``{{label}}`` replaced by the label's value."""
    return _LEGEND_LABEL.sub(lambda match: labels.get(match.group(1), ""), legend)


@dataclass(frozen=True)
class Series:
    """One series of a range query: its labels and its ``(unix time, value)`` points."""

    labels: Mapping[str, str]
    times: tuple[float, ...]
    values: tuple[float, ...]

    @property
    def finite(self) -> list[float]:
        """The values a panel can draw (Prometheus answers NaN for, e.g., 0/0 quantiles)."""
        return [v for v in self.values if math.isfinite(v)]


def _series(labels: Mapping[str, str], points: Sequence[Sequence[Any]]) -> Series:
    return Series(labels, tuple(float(t) for t, _ in points), tuple(float(v) for _, v in points))


class PrometheusApi:
    """A small client of Prometheus' HTTP API: instant and range queries."""

    def __init__(self, url: str, client: httpx2.Client | None = None) -> None:
        self.url = url.rstrip("/")
        self.client = client or httpx2.Client(timeout=10.0)

    def close(self) -> None:
        self.client.close()

    def _get(self, path: str, params: Mapping[str, str | float]) -> Any:
        response = self.client.get(self.url + path, params=dict(params))
        body = response.json()
        if response.status_code != 200 or body.get("status") != "success":
            raise RuntimeError(f"{path} {dict(params)} failed: {body.get('error', response.text)}")
        return body["data"]

    def instant(self, expr: str, at: float) -> list[tuple[Mapping[str, str], float]]:
        """``(labels, value)`` of each series of ``expr`` at unix time ``at``."""
        data = self._get("/api/v1/query", {"query": expr, "time": at})
        if data["resultType"] == "scalar":
            return [({}, float(data["result"][1]))]
        return [(row["metric"], float(row["value"][1])) for row in data["result"]]

    def range(self, expr: str, start: float, end: float, step_s: float) -> list[Series]:
        """Every series of ``expr`` evaluated every ``step_s`` from ``start`` to ``end``."""
        params: dict[str, str | float] = {"query": expr, "start": start, "end": end, "step": step_s}
        data = self._get("/api/v1/query_range", params)
        return [_series(row["metric"], row["values"]) for row in data["result"]]

    def samples(self, selector: str, start: float, end: float) -> list[Series]:
        """The raw samples of ``selector`` scraped in ``[start, end]``, at their scrape times."""
        data = self._get(
            "/api/v1/query", {"query": f"{selector}[{math.ceil(end - start)}s]", "time": end}
        )
        return [_series(row["metric"], row["values"]) for row in data["result"]]

    def evaluate(self, query: Query, start: float, end: float, step_s: float) -> list[Series]:
        """``query`` over ``[start, end]`` as Grafana would ask for it at ``step_s``."""
        step = query.step_s or step_s
        return self.range(grafana_expr(query.expr, step), start, end, step)
