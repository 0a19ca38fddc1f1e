"""The Prometheus config, recording and alert rules: promtool's checks and unit tests pass."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from loadtests.native.prometheus import JOBS, NativePrometheus, native_config

pytestmark = pytest.mark.integration

PROMETHEUS_DIR = Path(__file__).resolve().parents[2] / "dashboards" / "prometheus"
CONFIG = PROMETHEUS_DIR / "prometheus.yml"
RULE_FILES = sorted((PROMETHEUS_DIR / "rules").glob("*.yml"))
TEST_FILES = sorted((PROMETHEUS_DIR / "tests").glob("*.yml"))


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


def test_native_config_is_valid(promtool: str, tmp_path: Path) -> None:
    targets = {job: f"127.0.0.1:{9000 + i}" for i, job in enumerate(sorted(JOBS))}
    path = NativePrometheus(9090, targets, tmp_path).write_config()
    output = _run(promtool, "check", "config", path)
    assert f"SUCCESS: {len(RULE_FILES)} rule files found" in output


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


def test_native_config_matches_the_compose_config() -> None:
    compose = CONFIG.read_text()
    native = native_config({})
    for key, value in native["global"].items():
        assert re.search(rf"^\s+{key}: {value}$", compose, re.M), f"{key} differs from {value}"
    assert set(re.findall(r"job_name: (\S+)", compose)) == JOBS
    assert native["rule_files"] == [str(PROMETHEUS_DIR.resolve() / "rules" / "*.yml")]
