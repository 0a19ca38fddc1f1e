"""`brink compare`, `brink profiles` and `brink ramp`'s refusals, through `main` (no load)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from loadtests.cli import main
from loadtests.exit_codes import ExitCode
from loadtests.scenarios.registry import SCENARIOS
from loadtests.summary import RunSummary

BASELINE = RunSummary(
    knee_rps=200.0,
    onset_rps=170.0,
    collapse_rps=260.0,
    predicted_rps=210.0,
    knee_error_ratio=-0.05,
    p95_at_average_ms=20.0,
    p99_at_average_ms=40.0,
    error_rate_at_average=0.0,
    goodput_ratio_at_peak=0.99,
    max_offered_rps=300.0,
    dropped_ratio=0.0,
)


def _run(
    tmp_path: Path, name: str, summary: RunSummary, knee_speed_ms: list[float] | None = None
) -> Path:
    """A run folder whose report has ``summary`` (and a knee stage at ``knee_speed_ms``)."""
    folder = tmp_path / name
    folder.mkdir()
    report: dict[str, object] = {"summary": summary.to_dict()}
    if knee_speed_ms is not None:
        report |= {
            "tipping": {"knee_index": 3},
            "stages": [{"index": 3, "box_speed_ms": knee_speed_ms}],
        }
    (folder / "report.json").write_text(json.dumps(report))
    return folder


def test_compare_passes_a_run_within_tolerance(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    current = dataclasses.replace(BASELINE, knee_rps=190.0, p95_at_average_ms=21.0)
    code = main(["compare", str(_run(tmp_path, "a", BASELINE)), str(_run(tmp_path, "b", current))])
    assert code == ExitCode.OK
    assert "knee_rps" in capsys.readouterr().out


def test_compare_flags_a_lowered_tipping_point(tmp_path: Path) -> None:
    current = dataclasses.replace(BASELINE, knee_rps=150.0)
    baseline_file = _run(tmp_path, "a", BASELINE) / "report.json"
    code = main(["compare", str(baseline_file), str(_run(tmp_path, "b", current))])
    assert code == ExitCode.REGRESSION


def test_compare_warns_when_the_box_ran_at_another_speed_at_the_knees(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    current = dataclasses.replace(BASELINE, knee_rps=150.0)
    baseline = _run(tmp_path, "a", BASELINE, [4.0, 4.2])
    code = main(["compare", str(baseline), str(_run(tmp_path, "b", current, [6.5, 6.9]))])
    assert code == ExitCode.REGRESSION  # the verdict stands; the note says why to re-run
    out = capsys.readouterr().out
    assert "baseline 4.0 / 4.2 ms, current 6.5 / 6.9 ms: this box ran 63% slower" in out
    assert main(["compare", str(baseline), str(_run(tmp_path, "c", BASELINE, [4.1, 4.3]))]) == 0
    assert "Box speed" not in capsys.readouterr().out


def test_compare_ignores_a_box_speed_it_cannot_read(tmp_path: Path) -> None:
    current = _run(tmp_path, "b", BASELINE)
    report = json.loads((current / "report.json").read_text())
    report |= {"tipping": "knee", "stages": [{"index": 3, "box_speed_ms": "fast"}]}
    (current / "report.json").write_text(json.dumps(report))
    assert main(["compare", str(_run(tmp_path, "a", BASELINE, [4.0, 4.2])), str(current)]) == 0


def test_compare_refuses_what_is_not_a_report(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "junk.json").write_text("{}")
    assert main(["compare", str(tmp_path / "junk.json"), str(tmp_path / "missing")]) == 2
    assert "cannot read a report" in capsys.readouterr().err


def test_profiles_lists_every_profile(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["profiles", "--average-rps", "10", "--peak-rps", "20"]) == 0
    out = capsys.readouterr().out
    for name in ("average", "peak", "breakpoint", "spike", "soak", "ramp-and-recover"):
        assert name in out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--target", "http://10.1.2.3:8000"], "--allow-remote"),
        (["--mix", "item=x"], "mix"),
        (["--average-rps", "100", "--peak-rps", "50"], "peak"),
        (["--rps-cap", "10", "--peak-rps", "100"], "cap"),
        (["--loop-share", "0"], "--loop-share: must be in (0, 1]"),
        (["--loop-share", "1.5"], "--loop-share: must be in (0, 1]"),
    ],
)
def test_ramp_refuses_bad_plans_before_starting_anything(
    argv: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["ramp", "--run-dir", str(tmp_path / "run"), *argv]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_scenario_list_names_each_scenario_once(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["scenario", "--list"]) == ExitCode.OK
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines] == list(SCENARIOS)


@pytest.mark.parametrize(("argv", "message"), [([], "name is required"), (["nope"], "'nope'")])
def test_scenario_refuses_a_missing_or_unknown_name_before_starting_anything(
    argv: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run"
    assert main(["scenario", *argv, "--run-dir", str(out)]) == ExitCode.USAGE
    err = capsys.readouterr().err
    assert message in err
    assert "fragile-vs-resilient" in err
    assert not out.exists()
