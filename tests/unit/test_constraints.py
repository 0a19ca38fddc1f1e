"""constraints.txt, brink's lock: well-formed, pins every requirement, and is what .venv runs.

scripts/bootstrap and docker/Dockerfile install with ``--constraint constraints.txt`` (their own
tests check that); here the file itself is checked against pyproject.toml and this environment.
"""

from __future__ import annotations

import tomllib
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).parents[2]
CONSTRAINTS = ROOT / "constraints.txt"
REFRESH = "refresh it as its header says, then run scripts/bootstrap --dev"


def _pins() -> dict[str, str]:
    pins: dict[str, str] = {}
    for number, line in enumerate(CONSTRAINTS.read_text().splitlines(), start=1):
        if not line.strip() or line.startswith("#"):
            continue
        name, separator, version = line.partition("==")
        shape = f"line {number}: {line!r} is not name==version"
        assert separator, shape
        assert version, shape
        assert " " not in line, shape
        key = canonicalize_name(name)
        assert key not in pins, f"line {number}: {name} pinned twice"
        pins[key] = version
    return pins


def _requirements() -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = project.get("optional-dependencies", {})
    lines = [*project["dependencies"], *(line for extra in extras.values() for line in extra)]
    return [Requirement(line) for line in lines]


def test_every_line_pins_one_package_and_brink_is_not_one() -> None:
    pins = _pins()
    assert len(pins) > 50
    assert "brink" not in pins, "the project itself is installed editable, never pinned"


def test_every_requirement_of_pyproject_is_pinned_within_its_range() -> None:
    pins = _pins()
    for requirement in _requirements():
        version = pins.get(canonicalize_name(requirement.name))
        assert version is not None, f"{requirement.name} is not in constraints.txt: {REFRESH}"
        assert requirement.specifier.contains(version, prereleases=True), (
            f"constraints.txt pins {requirement.name}=={version}, pyproject wants {requirement}"
        )


def _installed_tree(root: str, extras: frozenset[str]) -> dict[str, str]:
    """Name -> installed version of ``root`` and everything it requires here, with extras."""
    found: dict[str, str] = {}
    seen: set[tuple[str, frozenset[str]]] = set()
    todo = [(root, extras)]
    while todo:
        name, wanted = todo.pop()
        dist = metadata.distribution(name)
        key = canonicalize_name(dist.metadata["Name"])
        if (key, wanted) in seen:
            continue
        seen.add((key, wanted))
        found[key] = dist.version
        environments = [{"extra": extra} for extra in wanted] or [{"extra": ""}]
        for line in dist.requires or []:
            requirement = Requirement(line)
            marker = requirement.marker
            if marker is None or any(marker.evaluate(env) for env in environments):
                todo.append((requirement.name, frozenset(requirement.extras)))
    return found


def test_this_environment_runs_exactly_the_locked_versions() -> None:
    try:
        installed = _installed_tree("brink", frozenset({"dev"}))
    except metadata.PackageNotFoundError as exc:
        pytest.skip(f"brink[dev] is not installed here ({exc}): run scripts/bootstrap --dev")
    installed.pop("brink")
    pins = _pins()
    unpinned = sorted(set(installed) - set(pins))
    assert not unpinned, f"installed with brink[dev] but not in constraints.txt: {unpinned}"
    drifted = {name: (v, pins[name]) for name, v in installed.items() if pins[name] != v}
    assert not drifted, f"installed vs locked: {drifted}; run scripts/bootstrap --dev"
