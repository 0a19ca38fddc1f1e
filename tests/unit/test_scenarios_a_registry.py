"""The scenario registry, options and the runner's pure parts: settings, exit codes."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

import pytest

from loadtests.exit_codes import ExitCode
from loadtests.ledger import LedgerVerdict
from loadtests.runner import RampConfig
from loadtests.scenarios.base import (
    Phase,
    ScenarioOptions,
    ScenarioResult,
    StackNeeds,
    Verdict,
)
from loadtests.scenarios.registry import SCENARIOS, SUMMARIES, load
from loadtests.scenarios.runner import exit_code, run_failure, stack_config, stack_settings
from tests.unit.synthetic import stage

MINE = ("average-vs-peak", "tipping-point", "fragile-vs-resilient")


def test_every_scenario_of_the_issue_is_registered_with_a_summary() -> None:
    assert list(SCENARIOS) == [
        "average-vs-peak",
        "tipping-point",
        "retry-storm",
        "hidden-pressure-point",
        "fragile-vs-resilient",
        "metastable",
    ]
    assert SUMMARIES.keys() == SCENARIOS.keys()
    assert all(0 < len(line) <= 80 for line in SUMMARIES.values())


@pytest.mark.parametrize("name", MINE)
def test_load_returns_the_named_scenario(name: str) -> None:
    scenario = load(name)
    assert scenario.name == name
    assert scenario.description
    # Each puts the knee near 100 req/s with a small pool: the generator is never the limit.
    assert "BRINK_DB__POOL_MAX" in scenario.needs.settings
    assert "BRINK_DB__EXTRA_LATENCY_S" in scenario.needs.settings


def test_load_refuses_an_unknown_name() -> None:
    with pytest.raises(KeyError, match="known: average-vs-peak"):
        load("no-such-scenario")


def test_listing_the_scenarios_imports_none_of_them() -> None:
    # `brink scenario --list` (and the CLI itself) must stay cheap: no scenario module, no
    # matplotlib. A fresh interpreter, since this one has imported everything already.
    code = (
        "import sys, loadtests.cli, loadtests.scenarios.registry as r; "
        "print(sorted(m for m in sys.modules if m.startswith('matplotlib') "
        "or m in r.SCENARIOS.values()))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_step_prefers_the_operator_then_the_mode() -> None:
    assert ScenarioOptions().step(20, 4) == 20
    assert ScenarioOptions(quick=True).step(20, 4) == 4
    assert ScenarioOptions(quick=True, step_s=7).step(20, 4) == 7


def test_operator_settings_override_the_scenario_s(tmp_path: Path) -> None:
    needs = StackNeeds(pg_exporter=True, settings={"BRINK_DB__POOL_MAX": "2", "BRINK_X": "1"})
    options = ScenarioOptions(settings={"BRINK_DB__POOL_MAX": "8"})

    assert stack_settings(needs, options) == {"BRINK_DB__POOL_MAX": "8", "BRINK_X": "1"}
    config = stack_config(needs, options, tmp_path)
    assert config.extra_env == {"BRINK_DB__POOL_MAX": "8", "BRINK_X": "1"}
    assert config.pg_exporter_port is not None
    assert config.run_dir == tmp_path / "stack"
    assert len({config.service_port, config.slow_api_port, config.pg_port}) == 3
    assert stack_config(StackNeeds(), options, tmp_path).pg_exporter_port is None


def _result(passed: bool, stages: bool = True, aborted: str | None = None) -> ScenarioResult:
    phase = Phase(
        name="p",
        stages=[stage(0, 10)] if stages else [],
        seconds={},
        service_scrapes=[],
        faults=[],
        started_at=0.0,
        config=RampConfig(),
        aborted=aborted,
    )
    return ScenarioResult("s", "d", Verdict(passed, "x", "y"), [phase])


def test_exit_code_is_the_verdict_unless_the_run_failed() -> None:
    assert exit_code(_result(True)) is ExitCode.OK
    assert exit_code(_result(False)) is ExitCode.THRESHOLDS_BREACHED
    assert exit_code(_result(True, stages=False)) is ExitCode.RUN_FAILED
    assert exit_code(_result(True, aborted="watchdog: still running")) is ExitCode.RUN_FAILED
    # Stopping a ramp on collapse is part of the plan, not a failed run.
    assert exit_code(_result(True, aborted="collapse: goodput fell")) is ExitCode.OK
    assert run_failure(ScenarioResult("s", "d", Verdict(True, "x", "y"), [])) is not None


def test_a_lost_order_is_data_lost_whatever_the_lesson_showed() -> None:
    holds = LedgerVerdict(sent=3, acknowledged=3, failed=0, unknown=0, lost=0, unexpected=0,
                          refused_present=0, duplicates=0, unknown_present=0, unknown_absent=0,
                          items_checked=1)  # fmt: skip
    lost = dataclasses.replace(holds, lost=1)
    assert exit_code(dataclasses.replace(_result(True), ledger=holds)) is ExitCode.OK
    assert exit_code(dataclasses.replace(_result(False), ledger=lost)) is ExitCode.DATA_LOST
    assert exit_code(dataclasses.replace(_result(True), ledger=lost)) is ExitCode.DATA_LOST
    failed_run = dataclasses.replace(_result(True, stages=False), ledger=lost)
    assert exit_code(failed_run) is ExitCode.RUN_FAILED


def test_the_stack_is_durable_unless_the_operator_opts_out(tmp_path: Path) -> None:
    assert stack_config(StackNeeds(), ScenarioOptions(), tmp_path).durable_postgres
    fast = ScenarioOptions(durable_postgres=False)
    assert not stack_config(StackNeeds(), fast, tmp_path).durable_postgres
