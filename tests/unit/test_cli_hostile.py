"""Hostile command lines: every ``brink`` subcommand refuses bad arguments with exit code 2 and
its usage on stderr, before anything starts.

``main`` runs in-process with the parts that would start processes replaced by a tripwire, so a
bad argument that slips through fails the test instead of starting a stack. Cases marked xfail
(strict) are bugs in ``loadtests/cli.py`` reported to its owner; each turns into a failure the
moment it is fixed, so the mark gets removed then.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

import loadtests.ramp
from loadtests import cli

HOSTILE = [
    # brink up
    pytest.param(["up", "--service-port", "0"], "--service-port", id="up-port-0"),
    pytest.param(["up", "--pg-port", "99999"], "--pg-port", id="up-port-out-of-range"),
    pytest.param(["up", "--slow-api-port", "http"], "--slow-api-port", id="up-port-not-a-number"),
    pytest.param(["up", "--set", "DB__POOL_MAX"], "--set", id="up-set-without-value"),
    pytest.param(["up", "--set", "db pool=3"], "--set", id="up-set-bad-key"),
    pytest.param(["up", "--bogus"], "--bogus", id="up-unknown-flag"),
    pytest.param(["up", "--workers", "-1"], "--workers", id="up-negative-workers"),
    # brink ramp
    pytest.param(["ramp", "--average-rps", "-5"], "--average-rps", id="ramp-negative-rps"),
    pytest.param(["ramp", "--peak-rps", "0"], "--peak-rps", id="ramp-zero-rps"),
    pytest.param(["ramp", "--rps-cap", "nan"], "--rps-cap", id="ramp-nan-cap"),
    pytest.param(["ramp", "--step-s", "ten"], "--step-s", id="ramp-step-not-a-number"),
    pytest.param(["ramp", "--profile", "nope"], "--profile", id="ramp-unknown-profile"),
    pytest.param(["ramp", "--threshold", "knee_rps >>= x"], "--threshold", id="ramp-bad-threshold"),
    pytest.param(["ramp", "--threshold", "nonsense<=1"], "--threshold", id="ramp-unknown-metric"),
    pytest.param(["ramp", "--arrivals", "bursty"], "--arrivals", id="ramp-unknown-arrivals"),
    pytest.param(
        ["ramp", "--client-retries", "forever"], "--client-retries", id="ramp-unknown-retries"
    ),
    pytest.param(["ramp", "--bogus"], "--bogus", id="ramp-unknown-flag"),
    pytest.param(["ramp", "--fault", "at 5s nuke.everything"], "--fault", id="ramp-unknown-fault"),
    pytest.param(
        ["ramp", "--fault", "at 5s set slow_api.error_rate=7"], "--fault", id="ramp-fault-range"
    ),
    pytest.param(["ramp", "--fault", "sometime"], "--fault", id="ramp-fault-no-time"),
    pytest.param(["ramp", "--mix", "item=x"], "--mix", id="ramp-bad-mix"),
    pytest.param(["ramp", "--mix", "teleport=3"], "--mix", id="ramp-unknown-mix-kind"),
    pytest.param(["ramp", "--peak-rps", "inf"], "--peak-rps", id="ramp-infinite-rps"),
    pytest.param(["ramp", "--workers", "-2"], "--workers", id="ramp-negative-workers"),
    # brink compare
    pytest.param(["compare"], "baseline", id="compare-no-runs"),
    pytest.param(["compare", "a"], "current", id="compare-one-run"),
    pytest.param(
        ["compare", "a", "b", "--knee-drop", "lots"],
        "--knee-drop",
        id="compare-tolerance-not-a-number",
    ),
    pytest.param(["compare", "a", "b", "--bogus"], "--bogus", id="compare-unknown-flag"),
    pytest.param(
        ["compare", "a", "b", "--p95-rise", "-1"],
        "--p95-rise",
        id="compare-negative-tolerance",
    ),
    pytest.param(
        ["compare", "a", "b", "--knee-drop", "nan"],
        "--knee-drop",
        id="compare-nan-tolerance",
    ),
    # brink profiles
    pytest.param(["profiles", "--average-rps", "-1"], "--average-rps", id="profiles-negative"),
    pytest.param(["profiles", "--step-s", "0"], "--step-s", id="profiles-zero-step"),
    pytest.param(["profiles", "--peak-rps", "nan"], "--peak-rps", id="profiles-nan"),
    pytest.param(["profiles", "--bogus"], "--bogus", id="profiles-unknown-flag"),
    pytest.param(
        ["profiles", "--peak-rps", "inf"],
        "--peak-rps",
        id="profiles-infinite-rps",
    ),
    # no subcommand at all
    pytest.param([], "COMMAND", id="no-command"),
    pytest.param(["teleport"], "teleport", id="unknown-command"),
]


class WouldHaveStarted(AssertionError):
    """A bad argument got past the checks: something would have been started."""


def _tripwire(*args: object, **kwargs: object) -> None:
    raise WouldHaveStarted(f"called with {args} {kwargs}")


@pytest.fixture(autouse=True)
def _nothing_starts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cli, "NativeStack", _tripwire)
    monkeypatch.setattr(loadtests.ramp, "run_job", _tripwire)
    monkeypatch.setattr(cli, "summary_from_report", _tripwire)
    monkeypatch.setattr(cli, "build_profile", _tripwire)


@pytest.mark.parametrize(("argv", "named"), HOSTILE)
def test_a_bad_argument_exits_2_with_usage_naming_it(
    argv: list[str], named: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code = cli.main(argv)
    captured = capsys.readouterr()
    assert code == 2
    assert captured.err.startswith("usage: brink"), captured.err
    assert named in captured.err.splitlines()[-1], captured.err
    assert captured.out == ""


def test_the_installed_command_exits_2_with_usage() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "loadtests", "ramp", "--average-rps", "-1"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert done.stderr.startswith("usage: brink ramp")
    assert "--average-rps" in done.stderr.splitlines()[-1]
    assert "Traceback" not in done.stderr


def test_process_faults_against_a_target_are_refused_before_anything_starts(
    capsys: pytest.CaptureFixture[str],
) -> None:
    argv = ["ramp", "--target", "http://127.0.0.1:9", "--fault", "at 5s postgres.restart"]
    assert cli.main(argv) == 2
    assert "need the native stack" in capsys.readouterr().err
