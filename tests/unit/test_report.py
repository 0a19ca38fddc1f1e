"""The reports of one ramp: files, JSON round trip, JUnit, Markdown, HTML, redaction, plots."""

from __future__ import annotations

import dataclasses
import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

from loadtests.box_speed import BoxSpeed
from loadtests.capacity import Capacities, RouteDemand, predict
from loadtests.exit_codes import ExitCode
from loadtests.ledger import LedgerVerdict
from loadtests.outcome import RampOutcome, summary_from_report
from loadtests.plots import latency_plot, saturation_plot, throughput_plot
from loadtests.probe import (
    FullLoop,
    Holder,
    LoadedStage,
    ProbeResult,
    fit_loaded,
    model_capacities,
)
from loadtests.report import junit_xml, redact, write_reports
from loadtests.report_content import content, verdict
from loadtests.samples import ServerSample, StageSample
from loadtests.summary import summarize
from loadtests.thresholds import Threshold, evaluate, exit_code
from loadtests.tipping import find_tipping_point
from tests.unit.synthetic import KNEE, SLO_S, hockey

TOKEN = "s3cret-admin-token-value"
CONFIG: dict[str, Any] = {
    "profile": "breakpoint",
    "average_rps": 100.0,
    "peak_rps": 300.0,
    "slo_s": SLO_S,
    "admin_token": TOKEN,
    "target": "native stack",
    "settings": {"BRINK_ADMIN_TOKEN": TOKEN, "BRINK_DB__POOL_SIZE": "4"},
    "command": f"brink ramp --admin-token {TOKEN}",
    "dsn": "postgresql://brink:pg-password@127.0.0.1:5432/brink",
}
THRESHOLDS = ["knee_rps >= 150", "collapse_rps >= 250", "p95_at_average_ms <= 10"]
FILES = {
    "json": "report.json",
    "summary": "summary.md",
    "junit": "junit.xml",
    "throughput": "throughput.png",
    "latency": "latency.png",
    "saturation": "saturation.png",
    "html": "report.html",
}


def _server(stage: StageSample) -> ServerSample:
    """The pool of 4 fills at about 194 req/s, then requests queue for it."""
    queue = max(0.0, (stage.target_rps - 194) * 1.5)
    in_use = min(4.0, stage.achieved_rps * 0.0206)
    return ServerSample(
        in_flight=in_use + queue,
        pool_in_use=in_use,
        pool_size=4,
        pool_waiters=queue,
        acquire_wait_s=queue / 194,
        external_in_flight=stage.achieved_rps * 0.004,
        cpu_utilisation=0.3,
        throughput_rps=stage.achieved_rps,
    )


def ramp(
    stages: list[StageSample], *, model: bool = True, config: dict[str, Any] = CONFIG
) -> RampOutcome:
    """An outcome judged by the real analysis functions."""
    probe = ProbeResult(
        (RouteDemand("/orders", 1.0, db_hold_s=0.0206, external_s=0.0, cpu_s=0.001),),
        Capacities(pool_size=4, external_connections=10),
    )
    prediction = predict(probe.demands, probe.capacities) if model else None
    summary = summarize(stages, SLO_S, 100.0, 300.0, prediction)
    results = tuple(evaluate([Threshold.parse(t) for t in THRESHOLDS], summary))
    return RampOutcome(
        config=config,
        stages=tuple(stages),
        tipping=find_tipping_point(stages, SLO_S),
        summary=summary,
        thresholds=results,
        exit_code=exit_code(results),
        started_at=1_700_000_000.0,
        finished_at=1_700_000_300.0,
        prediction=prediction,
        probe=probe if model else None,
    )


@pytest.fixture(scope="module")
def outcome() -> RampOutcome:
    stages = [dataclasses.replace(s, server=_server(s), errors={}) for s in hockey()]
    return ramp(stages)


@pytest.fixture(scope="module")
def written(outcome: RampOutcome, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return write_reports(outcome, tmp_path_factory.mktemp("run") / "nested")


def test_every_report_is_written_and_named(written: dict[str, Path]) -> None:
    assert {name: path.name for name, path in written.items()} == FILES
    for path in written.values():
        assert path.stat().st_size > 0
    for name in ("throughput", "latency", "saturation"):
        assert written[name].read_bytes().startswith(b"\x89PNG\r\n\x1a\n")


def test_json_round_trips_to_the_same_summary(
    written: dict[str, Path], outcome: RampOutcome
) -> None:
    report = json.loads(written["json"].read_text())
    assert summary_from_report(report) == outcome.summary
    assert report["verdict"] == "THRESHOLDS_BREACHED"
    assert len(report["stages"]) == len(outcome.stages)


def test_junit_has_one_failure_per_breached_threshold(
    written: dict[str, Path], outcome: RampOutcome
) -> None:
    root = ET.parse(written["junit"]).getroot()
    (suite,) = root.iter("testsuite")
    assert suite.get("name") == "brink ramp"
    cases = {case.get("name"): case for case in suite.iter("testcase")}
    assert set(cases) == {"run completed", *(str(Threshold.parse(t)) for t in THRESHOLDS)}
    failed = {name for name, case in cases.items() if case.find("failure") is not None}
    assert failed == {str(r.threshold) for r in outcome.thresholds if not r.passed}
    assert failed == {"collapse_rps >= 250", "p95_at_average_ms <= 10"}
    assert suite.get("tests") == "4"
    assert suite.get("failures") == "2"


@pytest.mark.parametrize(
    ("aborted", "code"),
    [("2 stages in a row below 50% goodput", ExitCode.ABORTED_ON_COLLAPSE), (None, 3)],
)
def test_run_completed_fails_when_aborted_or_failed(
    outcome: RampOutcome, aborted: str | None, code: int
) -> None:
    broken = dataclasses.replace(outcome, aborted=aborted, exit_code=ExitCode(code))
    root = ET.fromstring(junit_xml(broken))
    case = next(c for c in root.iter("testcase") if c.get("name") == "run completed")
    failure = case.find("failure")
    assert failure is not None
    assert (aborted or "RUN_FAILED") in (failure.get("message") or "")


def test_summary_has_the_verdict_prediction_and_every_stage(
    written: dict[str, Path], outcome: RampOutcome
) -> None:
    text = written["summary"].read_text()
    assert "**FAIL: thresholds breached**" in text
    assert outcome.tipping.explanation.split(";")[0] in text
    assert f"measured knee {KNEE:.0f} req/s, 7.3% below the prediction" in text
    assert "`db_pool: 4 connections / 0.0206 s per request = 194 req/s`" in text
    assert "| `collapse_rps >= 250` | 220 | FAIL |" in text
    stage_rows = [line for line in text.splitlines() if re.match(r"\| s\d+-", line)]
    assert len(stage_rows) == len(outcome.stages)
    assert "| s8-180 (knee) | 180 | 180 | 180 |" in text
    for name in ("throughput.png", "latency.png", "saturation.png"):
        assert f"]({name})" in text


def test_html_is_self_contained(written: dict[str, Path]) -> None:
    page = written["html"].read_text()
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", page, re.IGNORECASE)
    assert page.count('src="data:image/png;base64,') == 3
    assert "<script" not in page
    assert "FAIL: thresholds breached" in page
    assert "Capacity probe" in page
    assert "/orders" in page
    assert "&quot;profile&quot;: &quot;breakpoint&quot;" in page  # the config, escaped


def test_no_secret_reaches_any_report(written: dict[str, Path]) -> None:
    for path in written.values():
        data = path.read_bytes()
        assert TOKEN.encode() not in data, path.name
        assert b"pg-password" not in data, path.name
    config = json.loads(written["json"].read_text())["config"]
    assert config["admin_token"] == "***"
    assert config["settings"] == {"BRINK_ADMIN_TOKEN": "***", "BRINK_DB__POOL_SIZE": "4"}
    assert config["command"] == "brink ramp --admin-token ***"
    assert config["dsn"] == "postgresql://brink:***@127.0.0.1:5432/brink"


def test_redact_leaves_the_original_and_unset_secrets_alone() -> None:
    config = {"admin_token": None, "nested": [{"api_key": "k-1234"}], "rate": 5}
    assert redact(config) == {"admin_token": None, "nested": [{"api_key": "***"}], "rate": 5}
    assert config["nested"] == [{"api_key": "k-1234"}]


def test_reports_without_server_samples_prediction_or_knee(tmp_path: Path) -> None:
    stages = [dataclasses.replace(s, p95_s=1.0) for s in hockey()]  # every stage misses the SLO
    bare = ramp(stages, model=False, config={"slo_ms": 500})
    assert bare.tipping.knee_rps is None
    assert all(s.server is None for s in bare.stages)
    paths = write_reports(bare, tmp_path)
    assert all(path.stat().st_size > 0 for path in paths.values())
    text = paths["summary"].read_text()
    assert "No capacity model" in text
    assert "| s0-20 | 20 |" in text


def test_plots_draw_a_soak_and_an_empty_run(outcome: RampOutcome) -> None:
    soak = [dataclasses.replace(s, index=i, target_rps=100.0) for i, s in enumerate(hockey())]
    for stages in (tuple(soak[:6]), ()):
        odd = dataclasses.replace(outcome, stages=stages)
        for plot in (throughput_plot, latency_plot, saturation_plot):
            fig = plot(odd)
            assert fig.axes
            fig.draw_without_rendering()


def test_stopping_on_a_planned_collapse_completes_the_run(outcome: RampOutcome) -> None:
    planned = dataclasses.replace(outcome, aborted="collapse: past the peak", exit_code=ExitCode.OK)
    root = ET.fromstring(junit_xml(planned))
    case = next(c for c in root.iter("testcase") if c.get("name") == "run completed")
    assert case.find("failure") is None


LEDGER_OK = LedgerVerdict(
    sent=120,
    acknowledged=100,
    failed=15,
    unknown=5,
    lost=0,
    unexpected=0,
    refused_present=0,
    duplicates=0,
    unknown_present=3,
    unknown_absent=2,
    items_checked=1000,
)


def test_the_ledger_has_its_section_json_and_junit_case(
    outcome: RampOutcome, tmp_path: Path
) -> None:
    assert "Not checked" in write_reports(outcome, tmp_path / "none")["summary"].read_text()
    paths = write_reports(dataclasses.replace(outcome, ledger=LEDGER_OK), tmp_path / "ok")
    text = paths["summary"].read_text()
    assert "## Ledger" in text
    assert "ledger holds: 120 orders sent: 100 acknowledged, 15 failed, 5 unknown" in text
    assert "| lost (acknowledged, absent) | 0 | 0 |" in text
    assert "| unknown, committed | 3 |  |" in text
    assert "Ledger" in paths["html"].read_text()
    report = json.loads(paths["json"].read_text())
    assert LedgerVerdict.from_dict(report["ledger"]) == LEDGER_OK
    case = next(
        c for c in ET.parse(paths["junit"]).iter("testcase") if c.get("name") == "ledger holds"
    )
    assert case.find("failure") is None


def test_a_broken_ledger_fails_the_verdict_and_its_junit_case(outcome: RampOutcome) -> None:
    broken = dataclasses.replace(
        outcome,
        ledger=dataclasses.replace(LEDGER_OK, lost=2),
        exit_code=ExitCode.DATA_LOST,
    )
    assert verdict(broken).startswith("FAIL: the order ledger does not hold")
    blocks = content(broken, CONFIG)
    assert any("2 lost" in str(block) for block in blocks)
    case = next(
        c
        for c in ET.fromstring(junit_xml(broken)).iter("testcase")
        if c.get("name") == "ledger holds"
    )
    failure = case.find("failure")
    assert failure is not None
    assert failure.get("type") == "LedgerBroken"


def test_the_probe_section_says_what_the_loaded_stage_changed(outcome: RampOutcome) -> None:
    at_rest = RouteDemand("/orders", 1.0, db_hold_s=0.0206, external_s=0.0, cpu_s=0.002)
    loaded = LoadedStage(
        rate_rps=136.0, cpu_s=0.001, loop_utilisation=0.136,
        db_hold_s={"/orders": 0.0231},
    )  # fmt: skip
    probe = ProbeResult(fit_loaded((at_rest,), loaded), Capacities(4, 10), loaded, (at_rest,))
    text = "\n".join(str(block) for block in content(outcome, CONFIG, full=True))
    assert "No loaded stage: the model uses the figures at rest." in text
    text = "\n".join(
        str(block)
        for block in content(dataclasses.replace(outcome, probe=probe), CONFIG, full=True)
    )
    assert (
        "Under load (the mix at 136 req/s): CPU 1.00 ms per request (at rest 2.00 ms), the event"
        " loop 14% busy; DB hold /orders 20.60 ms at rest, 23.10 ms." in text
    )
    assert "The service was not kept full: the CPU's limit uses 0.72 of its core." in text
    assert json.loads(json.dumps(probe.to_dict()))["at_rest"][0]["cpu_s"] == 0.002


@pytest.mark.parametrize(
    ("held_back_by", "says"),
    [
        ("loop", "the event loop held it back, so the table's CPU is this one and the CPU's"
         " capacity 0.81 of the core."),
        ("db_pool", "the DB pool held it back, not the loop, so the table's CPU is the one under"
         " load and the CPU's capacity 0.72 of the core."),
    ],
)  # fmt: skip
def test_the_probe_section_says_what_held_the_full_service_back(
    outcome: RampOutcome, held_back_by: Holder, says: str
) -> None:
    at_rest = RouteDemand("/items/{item_id}", 1.0, db_hold_s=0.0006, external_s=0.0, cpu_s=0.002)
    full = FullLoop(in_flight=37, rate_rps=900.0, cpu_s=0.0009, held_back_by=held_back_by)
    loaded = LoadedStage(
        rate_rps=400.0, cpu_s=0.0012, loop_utilisation=0.48, db_hold_s={}, full=full
    )
    capacities = model_capacities(Capacities(5, 10), loaded)
    probe = ProbeResult(fit_loaded((at_rest,), loaded), capacities, loaded, (at_rest,))
    text = "\n".join(
        str(block)
        for block in content(dataclasses.replace(outcome, probe=probe), CONFIG, full=True)
    )
    assert (
        "Kept full (37 requests in flight): 900 req/s, CPU 0.90 ms per request, 0.81 of a core; "
        + says
    ) in text
    assert json.loads(json.dumps(probe.to_dict()))["loaded"]["full"]["held_back_by"] == held_back_by


def _with_speeds(
    outcome: RampOutcome, probe_ms: tuple[float, ...], knee_ms: tuple[float, ...]
) -> RampOutcome:
    """``outcome`` with the box's speed read in the probe and in every stage."""
    assert outcome.probe is not None
    probe = dataclasses.replace(outcome.probe, box_speed=BoxSpeed(probe_ms))
    stages = tuple(dataclasses.replace(s, box_speed_ms=knee_ms) for s in outcome.stages)
    return dataclasses.replace(outcome, probe=probe, stages=stages)


def test_the_prediction_says_whether_the_box_held_its_speed(outcome: RampOutcome) -> None:
    def text(case: RampOutcome) -> str:
        return "\n".join(str(block) for block in content(case, CONFIG))

    assert "Box speed" not in text(outcome)
    held = text(_with_speeds(outcome, (4.0, 6.0), (4.2, 5.5)))
    assert "4.0 / 6.0 ms in the probe, 4.2 / 5.5 ms at the knee: the box held its speed." in held
    faster = text(_with_speeds(outcome, (4.0, 6.0), (4.0, 4.0)))
    assert "the box ran 20% faster at the knee than in the probe." in faster


def test_a_stage_keeps_its_box_speed_through_json(outcome: RampOutcome) -> None:
    stage = dataclasses.replace(outcome.stages[0], box_speed_ms=(4.0, 6.5))
    assert StageSample.from_dict(json.loads(json.dumps(stage.to_dict()))) == stage
    probe = _with_speeds(outcome, (4.0, 6.0), (4.0, 6.0)).probe
    assert probe is not None
    assert probe.to_dict()["box_speed_ms"] == [4.0, 6.0]


def test_a_non_durable_run_says_so_and_a_durable_one_does_not(outcome: RampOutcome) -> None:
    def text(durable: bool | None) -> str:
        config = {**CONFIG, "durable_postgres": durable}
        return " ".join(str(block) for block in content(outcome, config))

    assert "non-durable" in text(False)
    assert "non-durable" not in text(True)
    assert "non-durable" not in text(None)  # a target: brink cannot tell
