"""scripts/bootstrap's decisions, run for real in bash with a PATH of our choosing.

Sourced, the script only defines its functions; each test calls one with stand-ins on PATH for
``uname``, ``id``, ``apt-get`` or ``docker`` (tiny sh scripts), so it shows what a Mac, a
machine without apt, or a laptop without root would be told, and that nothing gets installed.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

ROOT = Path(__file__).parents[2]
BOOTSTRAP = ROOT / "scripts" / "bootstrap"
TOOLS = ("uname", "id", "cat", "cut", "sha256sum", "env")
"""Real tools the functions use; everything else is absent unless a test stubs it."""
CALLED = "STUB-CALLED"


def _path(tmp_path: Path, stubs: dict[str, str], tools: tuple[str, ...] = TOOLS) -> Path:
    folder = tmp_path / "bin"
    folder.mkdir(parents=True)
    for tool in tools:
        found = shutil.which(tool)
        if found is not None:
            (folder / tool).symlink_to(found)
    for name, body in stubs.items():
        stub = folder / name
        stub.unlink(missing_ok=True)
        stub.write_text(f"#!/bin/sh\n{body}\n")
        stub.chmod(0o755)
    return folder


def _call(path: Path, snippet: str) -> subprocess.CompletedProcess[str]:
    bash = shutil.which("bash")
    assert bash is not None
    # $0 is not the script, so sourcing it does not run main.
    return subprocess.run(
        [bash, "-c", f'source "$1"; {snippet}', "bootstrap-test", str(BOOTSTRAP)],
        env={"PATH": str(path)},
        capture_output=True,
        text=True,
        timeout=30,
    )


ALL = "postgresql prometheus docker-compose shellcheck python3-venv"


def test_without_apt_it_names_each_missing_thing(tmp_path: Path) -> None:
    told = _call(_path(tmp_path, {"uname": "echo Linux"}), f"apt_install {ALL}")
    assert told.returncode == 0, told.stderr
    assert f"bootstrap: missing: {ALL}. To install:" in told.stderr
    for wanted in (
        "a PostgreSQL server (initdb and pg_ctl on PATH)",
        "Prometheus with promtool",
        "Docker Compose v2 (`docker compose version` works)",
        "ShellCheck",
        "Python 3.11+ with its venv module",
        "pgserver wheel's PostgreSQL 16",
    ):
        assert wanted in told.stderr
    assert "brew" not in told.stderr
    assert "please install" not in told.stderr


def test_on_macos_it_names_the_homebrew_formulae(tmp_path: Path) -> None:
    told = _call(_path(tmp_path, {"uname": "echo Darwin"}), "apt_install postgresql prometheus")
    assert told.returncode == 0, told.stderr
    assert "  brew install postgresql@16 prometheus\n" in told.stderr
    assert "keg-only" in told.stderr
    assert "$(brew --prefix postgresql@16)/bin" in told.stderr
    assert "https://brew.sh" in told.stderr  # no brew on this PATH
    with_brew = _path(tmp_path / "b", {"uname": "echo Darwin", "brew": "exit 0"})
    told = _call(with_brew, "apt_install shellcheck python3-venv docker-compose")
    assert "  brew install shellcheck python@3.11 docker-compose\n" in told.stderr
    assert "brew.sh" not in told.stderr
    assert "keg-only" not in told.stderr


def test_without_root_or_sudo_it_prints_the_apt_command_and_installs_nothing(
    tmp_path: Path,
) -> None:
    stubs = {"uname": "echo Linux", "id": "echo 1000", "apt-get": f"echo {CALLED} >&2; exit 99"}
    told = _call(_path(tmp_path, stubs), "apt_install postgresql prometheus")
    assert told.returncode == 0, told.stderr
    command = "sudo apt-get install -y --no-install-recommends postgresql prometheus"
    assert f"  {command}\n" in told.stderr
    assert CALLED not in told.stderr


def test_as_root_with_apt_it_installs_through_apt_get(tmp_path: Path) -> None:
    calls = tmp_path / "apt-get.calls"
    stubs = {"uname": "echo Linux", "id": "echo 0", "apt-get": f'echo "$*" >> "{calls}"'}
    told = _call(_path(tmp_path, stubs), "apt_install shellcheck")
    assert told.returncode == 0, told.stderr
    assert "bootstrap: installing shellcheck with apt-get" in told.stderr
    assert calls.read_text() == "-y -q install --no-install-recommends shellcheck\n"


@pytest.mark.parametrize(
    ("stubs", "has_check"),
    [
        ({"docker": '[ "$1 $2" = "compose version" ] && exit 0; exit 1'}, True),
        ({"docker": "exit 1", "docker-compose": "exit 0"}, True),  # v1 on PATH: no reinstall
        ({"docker": "exit 1"}, False),  # the CLI without the Compose plugin (this box)
        ({}, False),
    ],
)
def test_docker_compose_is_installed_only_without_any_compose(
    tmp_path: Path, stubs: dict[str, str], has_check: bool
) -> None:
    checked = _call(_path(tmp_path, stubs), "have_compose_check")
    assert (checked.returncode == 0) is has_check, checked.stderr
    assert 'have_compose_check || missing+=" docker-compose"' in BOOTSTRAP.read_text()


def test_the_install_stamp_covers_the_lock(tmp_path: Path) -> None:
    pyproject, lock = tmp_path / "pyproject.toml", tmp_path / "constraints.txt"
    pyproject.write_text("[project]\n")
    lock.write_text("anyio==4.16.0\n")
    path = _path(tmp_path, {})
    before = _call(path, f'fingerprint "{pyproject}" "{lock}"').stdout
    lock.write_text("anyio==4.17.0\n")
    after = _call(path, f'fingerprint "{pyproject}" "{lock}"').stdout
    assert len(before.strip()) == 64
    assert before != after
    script = BOOTSTRAP.read_text()
    assert 'want="$(fingerprint pyproject.toml constraints.txt)"' in script
    assert "pip install -q --constraint constraints.txt -e" in script


def test_the_fingerprint_is_the_same_with_macos_shasum(tmp_path: Path) -> None:
    if shutil.which("shasum") is None:
        pytest.skip("no shasum here (perl's; macOS has it) to compare sha256sum with")
    files = tmp_path / "pyproject.toml"
    files.write_text("[project]\n")
    linux = _call(_path(tmp_path / "linux", {}), f'fingerprint "{files}"')
    tools = (*(t for t in TOOLS if t != "sha256sum"), "shasum", "perl")
    mac = _call(_path(tmp_path / "mac", {}, tools), f'fingerprint "{files}"')
    assert mac.returncode == 0, mac.stderr
    assert mac.stdout == linux.stdout
