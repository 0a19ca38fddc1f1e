"""How a stack's Prometheus finds an attached run's load generator, and what the generator says
about the run: the file_sd job, the target file, the run labels on Locust's command line and
on ``brink_loadgen_run_info``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from loadtests.attach.generator_targets import scraped_while_running
from loadtests.loadgen_metrics import LoadgenCollector, RunnerView, parse_run_labels
from loadtests.native.prometheus import RUN_JOB, NativePrometheus
from loadtests.runner import RampConfig, _locust_argv
from loadtests.series import Series

LABELS = {"scenario": "metastable", "phase": "fragile"}


def test_brink_ups_prometheus_scrapes_every_target_file_as_locust(tmp_path: Path) -> None:
    prometheus = NativePrometheus(9090, {"demo-service": "127.0.0.1:8000"}, tmp_path)
    prometheus.write_config()
    config = json.loads(prometheus.config_path.read_text())
    (job,) = [job for job in config["scrape_configs"] if job["job_name"] == RUN_JOB]
    assert job["file_sd_configs"][0]["files"] == [str(tmp_path.resolve() / "targets" / "*.json")]
    assert job["relabel_configs"] == [{"target_label": "job", "replacement": "locust"}]
    assert job["honor_labels"] is True
    assert prometheus.targets_dir.is_dir()


def test_the_target_file_lists_the_generator_only_while_it_runs(tmp_path: Path) -> None:
    with scraped_while_running(tmp_path, "127.0.0.1:40001", LABELS) as path:
        assert path.suffix == ".json"
        assert path.parent == tmp_path
        assert json.loads(path.read_text()) == [{"targets": ["127.0.0.1:40001"], "labels": LABELS}]
        assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no partial file left
    assert list(tmp_path.iterdir()) == []


def test_the_target_file_goes_also_when_the_run_fails(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError), scraped_while_running(tmp_path, "127.0.0.1:1", LABELS):
        raise RuntimeError("locust died")
    assert list(tmp_path.iterdir()) == []


def test_the_run_labels_reach_locusts_command_line(tmp_path: Path) -> None:
    argv = _locust_argv(RampConfig(run_labels=LABELS), "http://127.0.0.1:8000", tmp_path, 1)
    given = [argv[i + 1] for i, arg in enumerate(argv) if arg == "--brink-run-label"]
    assert given == ["phase=fragile", "scenario=metastable"]
    assert "--brink-run-label" not in _locust_argv(RampConfig(), "http://h", tmp_path, 1)


def test_run_labels_are_a_fixed_set() -> None:
    assert parse_run_labels(["scenario=metastable", "phase=fragile"]) == LABELS
    with pytest.raises(ValueError, match="expected one of scenario, phase"):
        parse_run_labels(["user=alice"])
    with pytest.raises(ValueError, match="expected one of"):
        parse_run_labels(["scenario"])


def _run_info(labels: dict[str, str]) -> list[dict[str, str]]:
    view = RunnerView(lambda: 0, dict, lambda: None, lambda: 0, labels)
    registry = CollectorRegistry()
    registry.register(LoadgenCollector(Series(slo_s=0.5), view))
    text = generate_latest(registry).decode()
    (family,) = [
        f for f in text_string_to_metric_families(text) if f.name == "brink_loadgen_run_info"
    ]
    return [sample.labels for sample in family.samples]


def test_the_generator_exports_what_it_runs() -> None:
    assert _run_info(LABELS) == [LABELS]
    assert _run_info({}) == [{"scenario": "", "phase": ""}]  # the web UI's own runs
