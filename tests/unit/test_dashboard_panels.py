"""The dashboards' queries as Grafana sends them, and what a panel shows, without a Prometheus.

Prometheus is an ``httpx2.MockTransport`` answering range queries from a table, so Grafana's
variables, legends, overrides and annotation marks are checked on known data.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence

import httpx2
import pytest

from dashboards.panels import annotation_marks, panel_lines
from dashboards.queries import (
    Json,
    PrometheusApi,
    dashboard_queries,
    dashboard_uids,
    grafana_expr,
    legend_labels,
    legend_text,
    load_dashboard,
    rate_interval_s,
)

Answers = Mapping[str, Sequence[tuple[dict[str, str], Sequence[tuple[float, float]]]]]
"""PromQL -> the series it returns: ``(labels, [(unix time, value), ...])``."""


def _api(answers: Answers) -> PrometheusApi:
    """A Prometheus whose range queries answer ``answers[expr]`` (no series for the rest)."""

    def handle(request: httpx2.Request) -> httpx2.Response:
        expr = request.url.params["query"]
        result = [
            {"metric": labels, "values": [[t, str(v)] for t, v in points]}
            for labels, points in answers.get(expr, [])
        ]
        data = {"resultType": "matrix", "result": result}
        return httpx2.Response(200, json={"status": "success", "data": data})

    return PrometheusApi("http://prometheus", httpx2.Client(transport=httpx2.MockTransport(handle)))


@pytest.mark.parametrize(("step_s", "rate_interval"), [(1.0, "8s"), (2.0, "8s"), (10.0, "12s")])
def test_grafana_variables_are_filled_as_grafana_fills_them(
    step_s: float, rate_interval: str
) -> None:
    # $__interval never falls below the datasource's timeInterval (2 s); $__rate_interval is
    # max($__interval + scrape interval, 4 x scrape interval).
    expr = "rate(x[$__rate_interval]) + avg_over_time(y[$__interval])"
    interval = f"{max(step_s, 2.0):g}s"
    assert grafana_expr(expr, step_s) == (
        f"rate(x[{rate_interval}]) + avg_over_time(y[{interval}])"
    )
    assert rate_interval_s(2.0) == 8.0


def test_legends_name_series_by_their_labels() -> None:
    assert legend_labels("{{route}} {{ status }}") == {"route", "status"}
    assert legend_text("{{route}} {{ status }}", {"route": "/orders", "status": "503"}) == (
        "/orders 503"
    )
    assert legend_text("offered", {"job": "locust"}) == "offered"


def test_every_target_and_annotation_of_every_dashboard_is_read() -> None:
    for uid in dashboard_uids():
        board = load_dashboard(uid)
        queries = list(dashboard_queries(board))
        targets = sum(len(panel.get("targets", [])) for panel in board["panels"])
        assert len([q for q in queries if q.kind == "panel"]) == targets
        annotations = [q for q in queries if q.kind == "annotation"]
        switches = ["Resilience preset"] if uid == "brink-resilience" else []
        expected = ["Locust stages", "Past the knee", "Lesson phases", *switches]
        assert [q.panel for q in annotations] == expected
        assert all(q.step_s == 5.0 for q in annotations)


def _panel(title: str) -> Json:
    board = load_dashboard("brink-overview")
    found: Json = next(p for p in board["panels"] if p["title"] == title)
    return found


def test_a_panel_names_its_series_and_keeps_its_overrides() -> None:
    panel = _panel("DB pool: utilisation and waiters")
    exprs = {t["legendFormat"]: t["expr"] for t in panel["targets"]}
    answers: Answers = {
        grafana_expr(exprs["utilisation"], 2.0): [({"job": "demo-service"}, [(100, 0.5)])],
        # A missing sample breaks the line, as Grafana draws it (no spanNulls).
        grafana_expr(exprs["waiters"], 2.0): [({}, [(100, 1), (102, 2), (108, 3)])],
    }
    lines = {
        line.name: line for line in panel_lines(_api(answers), "brink-overview", panel, 100, 110)
    }

    assert lines["utilisation"].right_unit is None
    assert lines["waiters"].right_unit == "short"
    assert lines["waiters"].times[:3] == (0.0, 2.0, 4.0)
    assert math.isnan(lines["waiters"].values[2])


def test_annotations_become_stage_marks_and_merged_regions() -> None:
    board = load_dashboard("brink-overview")
    stages, knee, lessons = (q for q in dashboard_queries(board) if q.kind == "annotation")
    answers: Answers = {
        grafana_expr(stages.expr, 5.0): [
            ({"stage": "average (40 req/s)"}, [(105, 1)]),
            ({"stage": "peak (100 req/s)"}, [(130, 1), (135, 1)]),  # one change seen twice
        ],
        # Two consecutive steps past the knee are one region; a later step starts another.
        grafana_expr(knee.expr, 5.0): [
            ({"job": "locust"}, [(140, 1), (145, 1), (150, 0), (160, 1)])
        ],
        # A scenario's phase: marked once, where its generator starts sending.
        grafana_expr(lessons.expr, 5.0): [
            ({"scenario": "metastable", "phase": "fragile"}, [(110, 50), (115, 50)])
        ],
    }

    marks = annotation_marks(_api(answers), board, 100, 170)

    assert marks.titled == (
        (5.0, "stage: average (40 req/s)"),
        (10.0, "metastable: fragile"),
        (30.0, "stage: peak (100 req/s)"),
    )
    assert marks.regions == ((35.0, 45.0), (55.0, 60.0))


def test_a_failed_query_says_why() -> None:
    def handle(request: httpx2.Request) -> httpx2.Response:
        body = {"status": "error", "errorType": "bad_data", "error": "parse error"}
        return httpx2.Response(400, content=json.dumps(body))

    api = PrometheusApi("http://prometheus", httpx2.Client(transport=httpx2.MockTransport(handle)))
    with pytest.raises(RuntimeError, match="parse error"):
        api.range("rate(", 0, 10, 2)
