"""How a stack's Prometheus finds an attached run's load generator, and what the generator says
about the run: the file_sd job, the target file (as ``brink up``'s Prometheus and as the Compose
lab's container see the generator), the run labels on Locust's command line and on
``brink_loadgen_run_info``."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from loadtests.attach.generator_targets import scraped_while_running
from loadtests.attach.options import StackChoice
from loadtests.attach.session import attached
from loadtests.loadgen_metrics import LoadgenCollector, RunnerView, parse_run_labels
from loadtests.native.prometheus import RUN_JOB, NativePrometheus
from loadtests.native.stack import ADMIN_TOKEN_ENV
from loadtests.runner import RampConfig, _locust_argv
from loadtests.series import Series
from tests.unit.fake_stack import SERVICE, SLOW_API, TOKEN, FakeStack, dead_pid

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


def test_for_a_prometheus_in_a_container_the_target_names_the_host_as_it_sees_it(
    tmp_path: Path,
) -> None:
    address, host = "127.0.0.1:40001", "host.docker.internal"
    with scraped_while_running(tmp_path, address, LABELS, host=host) as path:
        groups = json.loads(path.read_text())
        assert groups == [{"targets": ["host.docker.internal:40001"], "labels": LABELS}]
        # The container's Prometheus runs as another user (nobody): it must read the file.
        assert stat.S_IMODE(path.stat().st_mode) & 0o044 == 0o044
    assert list(tmp_path.iterdir()) == []


def test_files_of_runs_that_died_are_removed_by_the_next_one(tmp_path: Path) -> None:
    """A run killed with SIGKILL cannot remove its file; the Compose folder outlives stacks."""
    stale = tmp_path / f"generator-{dead_pid()}-40002.json"
    live = tmp_path / f"generator-{os.getppid()}-40003.json"  # another run, still going
    other = tmp_path / "someone-elses.json"
    for path in (stale, live, other):
        path.write_text("[]\n")
    with scraped_while_running(tmp_path, "127.0.0.1:40001", LABELS) as path:
        assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
            [path.name, live.name, other.name]
        )


def test_the_target_file_goes_also_when_the_run_fails(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError), scraped_while_running(tmp_path, "127.0.0.1:1", LABELS):
        raise RuntimeError("locust died")
    assert list(tmp_path.iterdir()) == []


COMPOSE_LAB = f"""
name: brink-test-{os.getpid()}
services:
  slow-api:
    ports: ["{SLOW_API.removeprefix("http://")}:8001"]
  demo-service:
    ports: ["{SERVICE.removeprefix("http://")}:8000"]
  prometheus:
    volumes:
      - ./dashboards/prometheus:/etc/prometheus:ro
      - ./runs:/etc/prometheus-runs:ro
    extra_hosts: ["host.docker.internal:host-gateway"]
"""


def test_a_run_on_the_compose_lab_lists_its_generator_in_the_mounted_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(ADMIN_TOKEN_ENV, raising=False)
    (tmp_path / "docker-compose.yml").write_text(COMPOSE_LAB)
    (tmp_path / ".env").write_text(f"{ADMIN_TOKEN_ENV}={TOKEN}\n")
    runs = tmp_path / "runs"
    runs.mkdir()
    fake = FakeStack()
    with (
        attached(StackChoice("compose", tmp_path), {}, print, transport=fake.transport) as run,
        run.expose("127.0.0.1:19999", LABELS) as listed,
    ):
        assert Path(str(listed)).parent == runs
        groups = json.loads(Path(str(listed)).read_text())
        assert groups == [{"targets": ["host.docker.internal:19999"], "labels": LABELS}]
    assert list(runs.iterdir()) == []


def test_a_compose_folder_the_run_cannot_write_leaves_the_generator_unlisted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Docker creates a missing bind-mount folder owned by root: the run goes on regardless."""
    if os.geteuid() == 0:
        pytest.skip("root writes anywhere: run as a user to check this")
    monkeypatch.delenv(ADMIN_TOKEN_ENV, raising=False)
    (tmp_path / "docker-compose.yml").write_text(COMPOSE_LAB)
    (tmp_path / ".env").write_text(f"{ADMIN_TOKEN_ENV}={TOKEN}\n")
    (tmp_path / "runs").mkdir(mode=0o555)
    fake = FakeStack()
    with (
        attached(StackChoice("compose", tmp_path), {}, print, transport=fake.transport) as run,
        run.expose("127.0.0.1:19999", LABELS) as listed,
    ):
        assert listed is None


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
