"""The GitHub workflows, checked without GitHub: schema, commands, and agreement with the docs.

A workflow only runs on GitHub, after a push; a typo in it shows up as a red build nobody can
reproduce locally. So each file is validated against the workflow schema (check-jsonschema's
vendored copy, no network), every command of its ``run:`` steps is read the way the docs'
commands are (``test_docs_honest``: brink's own parser, the scripts, repository paths), and the
commands are the ones the docs tell people to run: ``./scripts/test`` from the README's quick
start, and the ramp gate's ``brink ramp`` and ``brink compare`` from docs/ci.md.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from loadtests.cli import build_parser
from tests.docs_reader import (
    ROOT,
    Command,
    brink_problem,
    doc_commands,
    path_problems,
    script_problem,
    shell_commands,
)

WORKFLOWS = ROOT / ".github" / "workflows"


def _workflow(name: str) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((WORKFLOWS / name).read_text(encoding="utf-8"))
    return data


def _steps(workflow: dict[str, Any]) -> list[dict[str, Any]]:
    return [step for job in workflow["jobs"].values() for step in job["steps"]]


def _run_commands(name: str) -> list[Command]:
    commands = []
    for step in _steps(_workflow(name)):
        if "run" in step:
            where = f".github/workflows/{name}: {step.get('name', step['run'][:30])}"
            commands += [Command(where, tuple(argv)) for argv in shell_commands(step["run"])]
    return commands


def _brink(commands: list[Command], subcommand: str) -> list[Command]:
    return [c for c in commands if Path(c.argv[0]).name == "brink" and c.argv[1:2] == (subcommand,)]


def test_there_are_the_two_workflows() -> None:
    assert sorted(p.name for p in WORKFLOWS.glob("*.yml")) == ["ramp-gate.yml", "tests.yml"]


def test_workflows_match_the_github_workflow_schema() -> None:
    checked = subprocess.run(
        [
            sys.executable,
            "-m",
            "check_jsonschema",
            "--builtin-schema",
            "vendor.github-workflows",
            *sorted(str(p) for p in WORKFLOWS.glob("*.yml")),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr


@pytest.mark.parametrize("name", ["tests.yml", "ramp-gate.yml"])
def test_every_run_command_parses(name: str) -> None:
    problems = []
    for command in _run_commands(name):
        argv = command.argv
        problem: str | None = None
        if Path(argv[0]).name == "brink":
            problem = brink_problem(argv[1:])
        elif argv[0].removeprefix("./").startswith("scripts/"):
            problem = script_problem(argv)
        problems += [f"{command}\n    {p}" for p in [problem, *path_problems(argv)] if p]
    assert not problems, "\n".join(problems)


def test_tests_run_the_readmes_test_command() -> None:
    readme = {c.argv for c in doc_commands(ROOT / "README.md").commands}
    runs = {c.argv for c in _run_commands("tests.yml")}
    assert ("./scripts/test",) in runs
    assert ("./scripts/test",) in readme


def test_the_gate_runs_what_the_docs_show() -> None:
    """docs/ci.md shows the gate's ramp and compare commands verbatim (token for token), and
    the README's CI gate section the same ramp."""
    documented = {c.argv for c in doc_commands(ROOT / "docs" / "ci.md").commands}
    gate = _run_commands("ramp-gate.yml")
    ramps, compares = _brink(gate, "ramp"), _brink(gate, "compare")
    assert len(ramps) == 1
    assert len(compares) == 1
    for command in (*ramps, *compares):
        assert command.argv in documented, f"not in docs/ci.md: {command}"
    assert "--threshold" in ramps[0].argv or "--thresholds-file" in ramps[0].argv
    readme = {c.argv for c in doc_commands(ROOT / "README.md").commands}
    assert ramps[0].argv in readme, "the README's CI gate section shows another ramp"


def test_docs_ci_shows_the_gates_steps_as_they_are() -> None:
    text = (ROOT / "docs" / "ci.md").read_text(encoding="utf-8")
    excerpts = re.findall(r"^```yaml\n(.*?)^```", text, re.M | re.S)
    assert len(excerpts) == 1
    assert yaml.safe_load(excerpts[0]) == _steps(_workflow("ramp-gate.yml"))


def test_the_gate_publishes_the_run_folder_it_writes_even_on_failure() -> None:
    ramp = _brink(_run_commands("ramp-gate.yml"), "ramp")[0].argv
    run_dir = ramp[ramp.index("--run-dir") + 1]
    steps = _steps(_workflow("ramp-gate.yml"))
    uploads = [s for s in steps if str(s.get("uses", "")).startswith("actions/upload-artifact@")]
    assert len(uploads) == 1
    upload = uploads[0]
    assert upload["uses"].startswith("actions/upload-artifact@v")
    assert upload["if"] == "always()"
    assert upload["with"]["path"].rstrip("/") == run_dir
    summary = next(s for s in steps if "GITHUB_STEP_SUMMARY" in s.get("run", "") and "if" in s)
    assert summary["if"] == "always()"
    assert f"{run_dir}/summary.md" in summary["run"]
    compare = _brink(_run_commands("ramp-gate.yml"), "compare")[0].argv
    assert build_parser().parse_args(list(compare[1:])).current == Path(run_dir)


@pytest.mark.parametrize("name", ["tests.yml", "ramp-gate.yml"])
def test_actions_are_pinned_to_a_major_version(name: str) -> None:
    for step in _steps(_workflow(name)):
        if "uses" in step:
            version = step["uses"].partition("@")[2]
            assert version.startswith("v"), f"{name}: {step['uses']} is not pinned to a release"


@pytest.mark.parametrize("name", ["tests.yml", "ramp-gate.yml"])
def test_python_311_with_a_pip_cache(name: str) -> None:
    setup = next(s for s in _steps(_workflow(name)) if "setup-python" in s.get("uses", ""))
    assert setup["with"]["python-version"] == "3.11"
    assert setup["with"]["cache"] == "pip"
