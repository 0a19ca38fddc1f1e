"""Dashboards as code: the Grafana provisioning and dashboards agree with what really exists.

No network and no Grafana: every panel and annotation query is parsed with a real PromQL parser
(``promql-parser``) and may name only metrics the services declare (their ``metrics.py`` built
into a fresh registry), the Postgres metrics, Prometheus' own series, or a recording rule of
dashboards/prometheus/rules/. Raw ``rate()``-like windows are ``$__rate_interval``.
"""

from __future__ import annotations

import importlib.util
import json
import re
import sys
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from types import ModuleType
from typing import Any

import promql_parser
import pytest
import yaml
from prometheus_client import CollectorRegistry
from prometheus_client.core import Metric

from demo_service.metrics import PoolStats, ServiceMetrics, SlowApiMetrics
from loadtests.loadgen_metrics import LoadgenCollector, RunnerView
from loadtests.series import Series

ROOT = Path(__file__).resolve().parents[2]
GRAFANA = ROOT / "dashboards" / "grafana"
PROMETHEUS = ROOT / "dashboards" / "prometheus"
DASHBOARD_FILES = sorted((GRAFANA / "dashboards").glob("*.json"))

# Exported by postgres_exporter in Compose (brink's two custom queries included) and by brink's
# own collector natively: name -> kind, so that rate() is only ever taken of a counter.
POSTGRES_METRICS = {
    "pg_up": "gauge",
    "pg_stat_activity_count": "gauge",
    "pg_locks_count": "gauge",
    "pg_stat_database_xact_commit": "counter",
    "pg_stat_database_xact_rollback": "counter",
    "pg_stat_database_deadlocks": "counter",
    "brink_pg_lock_waits": "gauge",
    "brink_pg_blocked_backends": "gauge",
}
# Series Prometheus adds to every scrape.
PROMETHEUS_SERIES = {"up": "gauge", "scrape_duration_seconds": "gauge"}
# Grafana's built-in variables, each replaced by a distinctive duration before parsing, so the
# parsed tree still tells which window came from which variable.
GRAFANA_VARIABLES = {"$__rate_interval": "3h3m3s", "$__interval": "2h2m2s", "$__range": "1h1m1s"}
RATE_WINDOW = timedelta(hours=3, minutes=3, seconds=3)
VARIABLE_WINDOWS = {RATE_WINDOW, timedelta(hours=2, minutes=2, seconds=2)}
RATE_FUNCTIONS = {"rate", "irate", "increase"}
UNITS = {"reqps", "ops", "s", "ms", "percentunit", "percent", "short", "bytes", "none"}
NO_DATA_PANELS = {"row", "text"}


def _yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def _seconds(duration: str) -> float:
    return promql_parser.parse_duration(duration).total_seconds()


def _exposed(family: Metric) -> dict[str, str]:
    """The sample names a metric family exposes, each with the kind rate() cares about."""
    suffixes = {
        "counter": ["_total", "_created"],
        "histogram": ["_bucket", "_sum", "_count", "_created"],
        "summary": ["", "_sum", "_count", "_created"],
        "info": ["_info"],
    }.get(family.type, [""])
    kind = "gauge" if family.type in ("gauge", "info") else "counter"
    return {family.name + suffix: kind for suffix in suffixes}


def _service_metrics() -> dict[str, str]:
    families: list[Metric] = []
    service = ServiceMetrics(CollectorRegistry())
    service.pool.source = lambda: PoolStats(size=1, idle=1, max_size=1, min_size=1)
    families += service.registry.collect()
    families += SlowApiMetrics(CollectorRegistry()).registry.collect()
    view = RunnerView(
        users=lambda: 0, requests_by_name=lambda: {}, stage=lambda: None, in_flight=lambda: 0
    )
    families += LoadgenCollector(Series(slo_s=0.5), view).collect()
    return {name: kind for family in families for name, kind in _exposed(family).items()}


def _recorded() -> set[str]:
    files = sorted((PROMETHEUS / "rules").glob("*.yml"))
    assert files, "no recording rules in dashboards/prometheus/rules/"
    return {
        rule["record"]
        for path in files
        for group in _yaml(path)["groups"]
        for rule in group["rules"]
        if "record" in rule
    }


METRICS = _service_metrics() | POSTGRES_METRICS | PROMETHEUS_SERIES
RECORDED = _recorded()
PROMETHEUS_CONFIG = _yaml(PROMETHEUS / "prometheus.yml")
JOBS = {job["job_name"] for job in PROMETHEUS_CONFIG["scrape_configs"]}
DATASOURCES = _yaml(GRAFANA / "provisioning" / "datasources" / "prometheus.yml")["datasources"]
DATASOURCE_UID = DATASOURCES[0]["uid"]
DASHBOARDS = {path.name: json.loads(path.read_text(encoding="utf-8")) for path in DASHBOARD_FILES}


def _panels(board: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for panel in board["panels"]:
        yield panel
        yield from panel.get("panels", [])  # a collapsed row holds its panels


def _queries() -> Iterator[tuple[str, str]]:
    """(where, PromQL) of every panel target and annotation of every dashboard."""
    for name, board in DASHBOARDS.items():
        for panel in _panels(board):
            for target in panel.get("targets", []):
                yield f"{name}: {panel['title']} / {target['legendFormat']}", target["expr"]
        for note in board["annotations"]["list"]:
            if "expr" in note:
                yield f"{name}: annotation {note['name']}", note["expr"]


QUERIES = list(_queries())


def _load_build() -> ModuleType:
    """dashboards/grafana/build.py, imported with its folder on the path (it is a script)."""
    folder = str(GRAFANA)
    sys.path.insert(0, folder)
    try:
        spec = importlib.util.spec_from_file_location("brink_grafana_build", GRAFANA / "build.py")
        assert spec is not None
        assert spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module
    finally:
        sys.path.remove(folder)


def test_the_json_is_what_build_py_writes() -> None:
    rendered: dict[str, str] = _load_build().render()
    assert sorted(rendered) == [path.name for path in DASHBOARD_FILES]
    for path in DASHBOARD_FILES:
        assert path.read_text(encoding="utf-8") == rendered[path.name], (
            f"{path.name} is stale: run .venv/bin/python dashboards/grafana/build.py"
        )


def test_uids_are_fixed_unique_and_name_the_files() -> None:
    uids = [board.get("uid", "") for board in DASHBOARDS.values()]
    assert len(DASHBOARDS) >= 3
    assert len(set(uids)) == len(uids)
    for name, board in DASHBOARDS.items():
        assert re.fullmatch(r"[a-z0-9][a-z0-9-]{0,39}", board["uid"]), board["uid"]
        assert name == f"{board['uid']}.json"
        assert "id" not in board  # provisioning keys dashboards by uid
    titles = [board["title"] for board in DASHBOARDS.values()]
    assert len(set(titles)) == len(titles)


def test_the_datasource_is_fixed_and_scrapes_at_prometheus_interval() -> None:
    assert len(DATASOURCES) == 1
    (source,) = DATASOURCES
    assert source["type"] == "prometheus"
    assert re.fullmatch(r"[a-z0-9][a-z0-9-]{0,39}", source["uid"])
    assert source["url"] == "http://prometheus:9090"
    scrape = PROMETHEUS_CONFIG["global"]["scrape_interval"]
    assert _seconds(source["jsonData"]["timeInterval"]) == _seconds(scrape)


def test_the_dashboard_provider_reads_an_absolute_folder() -> None:
    providers = _yaml(GRAFANA / "provisioning" / "dashboards" / "brink.yml")["providers"]
    assert [p["type"] for p in providers] == ["file"]
    assert providers[0]["options"]["path"].startswith("/")


def test_every_panel_and_annotation_uses_the_provisioned_datasource() -> None:
    for name, board in DASHBOARDS.items():
        for panel in _panels(board):
            if panel["type"] in NO_DATA_PANELS:
                assert not panel.get("targets"), f"{name}: {panel['title']}"
                continue
            assert panel["datasource"]["uid"] == DATASOURCE_UID, f"{name}: {panel['title']}"
            assert panel["targets"], f"{name}: {panel['title']} has no query"
            for target in panel["targets"]:
                assert target.get("datasource", panel["datasource"]) == panel["datasource"]
        for note in board["annotations"]["list"]:
            if not note.get("builtIn"):
                assert note["datasource"]["uid"] == DATASOURCE_UID, f"{name}: {note['name']}"


def test_every_data_panel_has_a_unit() -> None:
    for name, board in DASHBOARDS.items():
        for panel in _panels(board):
            if panel["type"] in NO_DATA_PANELS:
                continue
            field_config = panel["fieldConfig"]
            assert field_config["defaults"].get("unit") in UNITS, f"{name}: {panel['title']}"
            for override in field_config["overrides"]:
                for prop in override["properties"]:
                    if prop["id"] == "unit":
                        assert prop["value"] in UNITS, f"{name}: {panel['title']}"


def test_panels_have_unique_ids_and_do_not_overlap() -> None:
    for name, board in DASHBOARDS.items():
        panels = list(_panels(board))
        assert len({p["id"] for p in panels}) == len(panels), name
        cells: set[tuple[int, int]] = set()
        for panel in panels:
            pos = panel["gridPos"]
            assert pos["x"] + pos["w"] <= 24, f"{name}: {panel['title']}"
            columns = range(pos["x"], pos["x"] + pos["w"])
            mine = {(x, y) for x in columns for y in range(pos["y"], pos["y"] + pos["h"])}
            assert not cells & mine, f"{name}: {panel['title']} overlaps another panel"
            cells |= mine


def _check(expr: str) -> list[str]:
    """What is wrong with one query; an empty list when nothing is."""
    for variable, duration in GRAFANA_VARIABLES.items():
        expr = expr.replace(variable, duration)
    if "$" in expr:
        return [f"a template variable Grafana does not define by default: {expr}"]
    try:
        tree = promql_parser.parse(expr)
    except Exception as exc:  # the parser raises its own error types
        return [f"does not parse: {exc}"]
    problems: list[str] = []

    def visit(node: promql_parser.Expr) -> None:
        if isinstance(node, promql_parser.VectorSelector):
            problems.extend(_selector_problems(node))
        elif isinstance(node, promql_parser.MatrixSelector | promql_parser.SubqueryExpr):
            if node.range not in VARIABLE_WINDOWS:
                problems.append(f"a fixed window [{node.range}]: use $__rate_interval")
        elif isinstance(node, promql_parser.Call) and node.func.name in RATE_FUNCTIONS:
            problems.extend(_rate_problems(node))

    promql_parser.walk(tree, pre_visit=visit)
    return problems


def _selector_problems(node: promql_parser.VectorSelector) -> list[str]:
    problems = []
    if node.name is None:
        problems.append(f"a selector without a metric name: {node}")
    elif node.name not in METRICS and node.name not in RECORDED:
        problems.append(f"{node.name}: no service, collector or recording rule defines it")
    for matcher in node.matchers.matchers:
        positive = matcher.op in (promql_parser.MatchOp.Equal, promql_parser.MatchOp.Re)
        if matcher.name == "job" and positive:
            unknown = set(matcher.value.split("|")) - JOBS
            if unknown:
                problems.append(f"job {sorted(unknown)} is not scraped by prometheus.yml")
    return problems


def _rate_problems(call: promql_parser.Call) -> list[str]:
    (matrix,) = call.args
    if not isinstance(matrix, promql_parser.MatrixSelector):
        return [f"{call.func.name}() of a subquery"]
    name = matrix.vector_selector.name
    problems = []
    if matrix.range != RATE_WINDOW:
        problems.append(f"{call.func.name}({name}) must use [$__rate_interval]")
    if name in RECORDED:
        problems.append(f"{call.func.name}() of the recording rule {name}: it is a rate already")
    elif METRICS.get(name or "") != "counter":
        problems.append(f"{call.func.name}() of {name}, which is not a counter")
    return problems


@pytest.mark.parametrize(("where", "expr"), QUERIES, ids=[where for where, _ in QUERIES])
def test_every_query_parses_and_names_only_what_exists(where: str, expr: str) -> None:
    assert _check(expr) == [], where


def test_the_checker_catches_what_it_should() -> None:
    assert _check("rate(brink_http_requests_total[5m])") == [
        "rate(brink_http_requests_total) must use [$__rate_interval]",
        "a fixed window [0:05:00]: use $__rate_interval",
    ]
    assert _check("sum(rate(brink_http_requests_total[$__rate_interval]))") == []
    assert _check("rate(brink_db_pool_waiters[$__rate_interval])") == [
        "rate() of brink_db_pool_waiters, which is not a counter"
    ]
    assert _check("brink_http_requests") == [
        "brink_http_requests: no service, collector or recording rule defines it"
    ]
    assert _check('up{job="nope"}') == ["job ['nope'] is not scraped by prometheus.yml"]
    assert _check("sum(up") != []
    assert _check("up[$foo]") != []
    assert _check("histogram_quantile(0.9, brink_event_loop_lag_seconds_bucket)") == []


def test_the_rules_the_dashboards_use_exist() -> None:
    assert "job:brink_loadgen_arrivals:rate10s" in RECORDED  # the file was read at all
    assert METRICS.keys() >= {
        "brink_http_requests_total",
        "brink_db_pool_max",
        "brink_loadgen_stage_index",
        "brink_loadgen_latency_seconds_bucket",
        "process_cpu_seconds_total",
    }


def test_compose_mounts_the_dashboards_where_the_provider_reads_them() -> None:
    found = [ROOT / name for name in ("docker-compose.yml", "compose.yaml")]
    compose = next((path for path in found if path.exists()), None)
    if compose is None:
        pytest.skip("no Compose file yet")
    providers = _yaml(GRAFANA / "provisioning" / "dashboards" / "brink.yml")["providers"]
    text = compose.read_text(encoding="utf-8")
    assert f"dashboards/grafana/dashboards:{providers[0]['options']['path']}" in text
