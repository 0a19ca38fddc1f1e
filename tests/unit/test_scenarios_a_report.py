"""A scenario's reports from a synthetic result: files, JSON content, Markdown, HTML."""

from __future__ import annotations

import dataclasses
import json
from collections import Counter
from pathlib import Path

import pytest

from loadtests.faults.runner import AppliedFault
from loadtests.ledger import LedgerVerdict
from loadtests.runner import RampConfig
from loadtests.scenarios.base import Phase, ScenarioOptions, ScenarioResult, Verdict
from loadtests.scenarios.report import content, plot_files, to_dict, write_reports
from loadtests.series import Second, bucket_of
from tests.unit.synthetic import stage

T0 = 1_700_000_000


def _seconds(start: int, count: int, rate: int, good: int, latency_s: float) -> dict[int, Second]:
    return {
        start + i: Second(
            arrivals=rate,
            completed=rate,
            ok=good,
            good=good,
            errors=Counter({"timeout": rate - good}) if rate > good else Counter(),
            latency=Counter({bucket_of(latency_s): rate}),
        )
        for i in range(count)
    }


def _phase(name: str, start: int, good: int, latency_s: float, preset: str) -> Phase:
    faults = [
        AppliedFault(start + 5.0, 5.0, "apply", "slow_api.extra_latency_s=0.2", True),
        AppliedFault(start + 10.0, 10.0, "undo", "slow_api.extra_latency_s=0.2", True),
    ]
    return Phase(
        name=name,
        stages=[stage(0, 200, goodput=float(good), p95_s=latency_s)],
        seconds=_seconds(start + 1, 20, 200, good, latency_s),
        service_scrapes=[],
        faults=faults,
        started_at=float(start),
        config=RampConfig(profile="average", average_rps=200, peak_rps=200),
        ended_at=start + 30.0,
        timeline=[{"index": 0, "name": "average 1/3", "rps": 200, "start": start + 1.0}],
        labels={"preset": preset},
    )


def _result() -> ScenarioResult:
    return ScenarioResult(
        name="fragile-vs-resilient",
        description="The same overload against both presets.",
        verdict=Verdict(
            True,
            "contrast shown",
            "Resilient kept serving: 95% against 10%.",
            {"resilient_goodput_of_capacity": 0.95, "fragile_goodput_of_capacity": float("nan")},
        ),
        phases=[
            _phase("resilient-overload", T0, 190, 0.1, "resilient"),
            _phase("fragile-overload", T0 + 40, 20, 1.5, "fragile"),
        ],
        notes=["A note <with> markup."],
    )


TOKEN = "s3cret-token"


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Path]]:
    """One set of reports for every test here: plotting is the slow part."""
    folder = tmp_path_factory.mktemp("scenario")
    options = ScenarioOptions(quick=True, settings={"BRINK_ADMIN_TOKEN": TOKEN})
    settings = {"BRINK_DB__POOL_MAX": "2", "BRINK_ADMIN_TOKEN": TOKEN}
    return folder, write_reports(_result(), folder, options, settings, 0)


def test_write_reports_writes_every_file(written: tuple[Path, dict[str, Path]]) -> None:
    folder, paths = written
    names = {p.name for p in paths.values()}
    assert names == {
        "scenario.json",
        "summary.md",
        "report.html",
        "phases.png",
        "phase-1-resilient-overload.png",
        "phase-2-fragile-overload.png",
    }
    for path in paths.values():
        assert path.parent == folder
        assert path.stat().st_size > 0
    assert (folder / "phases.png").read_bytes().startswith(b"\x89PNG")


def test_json_holds_verdict_phases_series_and_faults(
    written: tuple[Path, dict[str, Path]],
) -> None:
    data = json.loads((written[0] / "scenario.json").read_text())

    assert data["verdict"]["label"] == "contrast shown"
    assert data["verdict"]["figures"] == {
        "resilient_goodput_of_capacity": 0.95,
        "fragile_goodput_of_capacity": None,  # NaN is not JSON
    }
    assert data["exit_code"] == 0
    assert data["settings"]["BRINK_DB__POOL_MAX"] == "2"
    first = data["phases"][0]
    assert first["labels"] == {"preset": "resilient"}
    assert first["stages"][0]["goodput_rps"] == 190
    assert len(first["seconds"]) == 20
    assert first["seconds"][str(T0 + 1)]["good"] == 190
    assert [f["kind"] for f in first["faults"]] == ["apply", "undo"]
    assert first["fault_windows"] == [
        {"label": "slow_api.extra_latency_s=0.2", "start": T0 + 5.0, "end": T0 + 10.0}
    ]
    assert first["config"]["profile"] == "average"


def test_secrets_are_redacted(written: tuple[Path, dict[str, Path]]) -> None:
    for name in ("scenario.json", "summary.md", "report.html"):
        assert TOKEN not in (written[0] / name).read_text()


def test_summary_puts_the_verdict_first(written: tuple[Path, dict[str, Path]]) -> None:
    lines = (written[0] / "summary.md").read_text().splitlines()

    assert lines[0] == "# brink scenario: fragile-vs-resilient"
    assert lines[2] == "**PASS: contrast shown**"
    text = "\n".join(lines)
    assert "Resilient kept serving" in text
    assert "| resilient-overload |" in text
    assert "| fragile-overload |" in text
    assert "phases.png" in text


def test_html_is_self_contained_and_escaped(written: tuple[Path, dict[str, Path]]) -> None:
    page = (written[0] / "report.html").read_text()

    assert page.count("data:image/png;base64,") == 3
    assert "A note &lt;with&gt; markup." in page
    assert "<script" not in page
    assert 'src="http' not in page


def test_many_phases_get_one_picture_each_and_no_side_by_side() -> None:
    result = _result()
    many = ScenarioResult(
        result.name, result.description, result.verdict, result.phases * 3, result.notes
    )
    files = [name for _, name in plot_files(many)]
    assert "phases.png" not in files
    assert len(files) == 6


def test_the_ledger_and_a_non_durable_postgres_reach_the_reports() -> None:
    ledger = LedgerVerdict(sent=4, acknowledged=3, failed=0, unknown=1, lost=1, unexpected=0,
                           refused_present=0, duplicates=0, unknown_present=0, unknown_absent=1,
                           items_checked=1000)  # fmt: skip
    result = dataclasses.replace(_result(), ledger=ledger)
    options = ScenarioOptions(durable_postgres=False)
    data = to_dict(result, options, {}, 6)
    assert LedgerVerdict.from_dict(data["ledger"]) == ledger
    text = " ".join(str(block) for block in content(result, data))
    assert "1 lost" in text
    assert "non-durable" in text
    durable = to_dict(_result(), ScenarioOptions(), {}, 0)
    assert durable["ledger"] is None
    assert "non-durable" not in " ".join(str(b) for b in content(_result(), durable))
