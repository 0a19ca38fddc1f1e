"""The Prometheus config, recording and alert rules: promtool's checks and unit tests pass.

The Compose config is checked twice: as it is (its rules are relative to it), and as its
container reads it, the Compose file's mounts mapped to folders here and a run's target file in
the run job's folder (promtool checks every ``file_sd`` file it finds). The native config is
checked with a native run's target file. Both configs have the same jobs, the run job equal."""

from __future__ import annotations

import posixpath
import re
import shutil
import subprocess
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
import yaml

from loadtests.attach.generator_targets import scraped_while_running
from loadtests.attach.running_stack import COMPOSE_RUN_TARGETS, find_compose
from loadtests.native.prometheus import (
    JOBS,
    RUN_JOB,
    NativePrometheus,
    native_config,
    run_targets_job,
)

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
PROMETHEUS_DIR = ROOT / "dashboards" / "prometheus"
CONFIG = PROMETHEUS_DIR / "prometheus.yml"
RULE_FILES = sorted((PROMETHEUS_DIR / "rules").glob("*.yml"))
TEST_FILES = sorted((PROMETHEUS_DIR / "tests").glob("*.yml"))
LABELS = {"scenario": "tipping-point", "phase": "ramp"}


@pytest.fixture(scope="module")
def promtool() -> str:
    found = shutil.which("promtool") or shutil.which("promtool", path="/usr/bin")
    if found is None:
        pytest.skip("promtool is not installed (Debian: apt-get install prometheus)")
    return found


def _run(promtool: str, *args: str | Path) -> str:
    done = subprocess.run(
        [promtool, *map(str, args)], capture_output=True, text=True, timeout=120, check=False
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, f"promtool {' '.join(map(str, args))} failed:\n{output}"
    return output


def _text(paths: list[Path]) -> str:
    return "\n".join(path.read_text() for path in paths)


def test_compose_config_is_valid(promtool: str) -> None:
    # Targets are Compose service names; promtool does not resolve them. It checks the rules too.
    output = _run(promtool, "check", "config", CONFIG)
    assert f"SUCCESS: {len(RULE_FILES)} rule files found" in output


def _in_container(config: dict[str, Any], mounts: dict[str, Path], config_dir: str) -> Any:
    """``config`` with every path the container reads (rule files, ``file_sd`` files) mapped
    through ``mounts`` (container folder -> folder here); a path in no mount fails."""

    def here(path: str) -> str:
        path = posixpath.join(config_dir, path)  # relative paths: to the config file's folder
        for target, source in sorted(mounts.items(), key=lambda mount: -len(mount[0])):
            if path == target or path.startswith(target + "/"):
                return str(source) + path.removeprefix(target)
        raise AssertionError(f"the Compose Prometheus reads {path}, which no mount provides")

    jobs = []
    for job in config["scrape_configs"]:
        sds = [
            {**sd, "files": [here(f) for f in sd["files"]]} for sd in job.get("file_sd_configs", [])
        ]
        jobs.append({**job, "file_sd_configs": sds} if sds else job)
    return {**config, "rule_files": [here(r) for r in config["rule_files"]], "scrape_configs": jobs}


def test_compose_config_is_valid_as_its_container_reads_it(promtool: str, tmp_path: Path) -> None:
    """docker-compose.yml's mounts and --config.file, the run-targets folder swapped for an
    empty one here, holding the file a ``--stack compose`` run writes."""
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    service = compose["services"][COMPOSE_RUN_TARGETS[0]]
    mounts = {target: ROOT / source for source, target, *_ in
              (volume.split(":") for volume in service["volumes"])}  # fmt: skip
    runs = mounts[COMPOSE_RUN_TARGETS[1]] = tmp_path / "runs"
    runs.mkdir()
    (config_file,) = [a.split("=", 1)[1] for a in service["command"] if "--config.file=" in a]
    config_dir = posixpath.dirname(config_file)
    config = yaml.safe_load((mounts[config_dir] / posixpath.basename(config_file)).read_text())
    rendered = tmp_path / "prometheus.yml"
    rendered.write_text(yaml.safe_dump(_in_container(config, mounts, config_dir)))
    host = find_compose(ROOT, environ={}).host_from_prometheus
    with scraped_while_running(runs, "127.0.0.1:40001", LABELS, host=host) as listed:
        assert "host.docker.internal:40001" in listed.read_text()
        output = _run(promtool, "check", "config", rendered)
    assert f"SUCCESS: {len(RULE_FILES)} rule files found" in output
    assert "WARNING" not in output  # e.g. no file_sd file found: then promtool checked none


def test_native_config_is_valid(promtool: str, tmp_path: Path) -> None:
    targets = {job: f"127.0.0.1:{9000 + i}" for i, job in enumerate(sorted(JOBS))}
    prometheus = NativePrometheus(9090, targets, tmp_path)
    path = prometheus.write_config()
    with scraped_while_running(prometheus.targets_dir, "127.0.0.1:40001", LABELS):
        output = _run(promtool, "check", "config", path)
    assert f"SUCCESS: {len(RULE_FILES)} rule files found" in output
    assert "WARNING" not in output


def test_rules_are_valid(promtool: str) -> None:
    assert [path.name for path in RULE_FILES] == ["brink-alerts.yml", "brink-recording.yml"]
    _run(promtool, "check", "rules", *RULE_FILES)


def test_rule_unit_tests_pass(promtool: str) -> None:
    assert TEST_FILES
    output = _run(promtool, "test", "rules", *TEST_FILES)
    assert "FAILED" not in output


def test_every_recording_rule_has_an_assertion() -> None:
    recorded = set(re.findall(r"^\s*- record: (\S+)", _text(RULE_FILES), re.M))
    asserted = set(re.findall(r"^\s*- expr: ([\w:]+)", _text(TEST_FILES), re.M))
    assert recorded, "no recording rules found"
    assert sorted(recorded - asserted) == []


def test_every_alert_is_tested_firing_and_not_firing() -> None:
    alerts = set(re.findall(r"^\s*- alert: (\S+)", _text(RULE_FILES), re.M))
    cases = re.findall(
        r"alertname: (\S+)\s*\n\s*eval_time: \S+\s*\n\s*exp_alerts:(.*)", _text(TEST_FILES)
    )
    firing = {name for name, rest in cases if rest.strip() != "[]"}
    silent = {name for name, rest in cases if rest.strip() == "[]"}
    assert alerts, "no alerts found"
    assert sorted(alerts - firing) == [], "alerts never tested firing"
    assert sorted(alerts - silent) == [], "alerts never tested not firing"


def test_every_recording_window_is_the_same() -> None:
    recording = (PROMETHEUS_DIR / "rules" / "brink-recording.yml").read_text()
    windows = set(re.findall(r"\[(\w+)\]", recording))
    assert windows == {"10s"}


def test_native_config_matches_the_compose_config(tmp_path: Path) -> None:
    """Same global settings, rule files, job names, and the same run job (brink-runs) but for
    where its files are: natively in the run dir, under Compose the container's mount."""
    compose = yaml.safe_load(CONFIG.read_text())
    native = native_config({}, targets_dir=tmp_path)
    assert compose["global"] == native["global"]
    assert native["rule_files"] == [str(PROMETHEUS_DIR.resolve() / "rules" / "*.yml")]
    assert compose["rule_files"] == ["rules/*.yml"]
    jobs = {job["job_name"]: job for job in compose["scrape_configs"]}
    assert set(jobs) == JOBS | {RUN_JOB}
    assert native["scrape_configs"] == [run_targets_job(tmp_path.resolve())]
    assert jobs[RUN_JOB] == run_targets_job(PurePosixPath(COMPOSE_RUN_TARGETS[1]))
