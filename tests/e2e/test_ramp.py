"""End to end: `brink ramp` through the native stack, real Locust, real Postgres.

A small pool with a known DB hold puts the saturation near 100 req/s, well within what one
generator process sends on two cores. The ramp must find a knee close to the capacity
model's prediction, write every report, and exit with the documented codes.
"""

from __future__ import annotations

import json
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e

# Pool of 4 connections, each order holding one ~42 ms: saturation ~95 req/s (Little's law).
# The SLO is generous (1 s) so the knee sits at the saturation, not at the SLO's own limit:
# at 95% utilisation a pool of 4 already queues p95 past 500 ms. Even arrivals offer each
# stage's rate near exactly; Poisson's +-10% per short stage would blur where the knee is.
STACK = ["--set", "DB__POOL_MAX=4", "--set", "DB__POOL_MIN=4", "--set", "DB__EXTRA_LATENCY_S=0.04"]
RAMP = [
    "--profile", "breakpoint", "--average-rps", "60", "--peak-rps", "100", "--step-s", "8",
    "--slo-ms", "1000", "--timeout-s", "3", "--mix", "order=1", "--seed", "1",
    "--arrivals", "even",
]  # fmt: skip


def _brink(*args: str, timeout_s: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "loadtests", *args],
        capture_output=True,
        text=True,
        timeout=timeout_s,
    )


def test_a_ramp_finds_the_knee_the_capacity_model_predicts(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    result = _brink(
        "ramp", *RAMP, *STACK, "--run-dir", str(run_dir),
        "--threshold", "knee_rps>=40", "--threshold", "error_rate_at_average<=0.01",
        "--loop-share", "0.9", timeout_s=150,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]

    for name in (
        "report.json", "summary.md", "junit.xml", "report.html",
        "throughput.png", "latency.png", "saturation.png",
    ):  # fmt: skip
        assert (run_dir / name).stat().st_size > 0, name

    report = json.loads((run_dir / "report.json").read_text())
    predicted = report["prediction"]["saturation_rps"]
    knee = report["summary"]["knee_rps"]
    assert report["prediction"]["bottleneck"] == "db_pool"
    assert report["probe"]["capacities"]["loop_share"] == 0.9  # --loop-share reached the model
    pool = next(r for r in report["prediction"]["resources"] if r["name"] == "db_pool")
    # The hold at rest is the configured 40 ms plus a little; the loaded hold (and with it the
    # prediction) also grows with how busy this machine is, so only the former has fixed bounds.
    at_rest_rps = 4 / (pool["at_rest_demand"] or pool["demand"])
    assert 80 <= at_rest_rps <= 110, report["prediction"]["explanation"]
    # Kept full, four 40 ms connections are what held the service back, not its event loop.
    full = report["probe"]["loaded"]["full"]
    assert full["held_back_by"] == "db_pool", full
    assert 0.8 * at_rest_rps <= full["rate_rps"] <= 1.1 * at_rest_rps, full
    assert knee is not None
    assert abs(knee - predicted) / predicted <= 0.15, (knee, predicted)
    assert report["summary"]["error_rate_at_average"] <= 0.01
    assert len(report["stages"]) >= 4
    first = report["stages"][0]
    assert abs(first["offered_rps"] - 60) / 60 < 0.05  # open model: offered what was asked
    assert first["server"]["pool_size"] == 4
    # The box's speed, read on every CPU in the probe and in each stage, is in the report.
    cpus = len(report["probe"]["box_speed_ms"])
    assert cpus >= 1
    assert all(len(s["box_speed_ms"]) == cpus for s in report["stages"])
    assert "Box speed" in (run_dir / "summary.md").read_text()

    suite = ET.parse(run_dir / "junit.xml").getroot()
    assert not list(suite.iter("failure"))


def test_a_breached_threshold_exits_1(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    result = _brink(
        "ramp", "--profile", "average", "--average-rps", "20", "--step-s", "3",
        "--timeout-s", "2", "--no-probe", "--run-dir", str(run_dir),
        "--threshold", "p95_at_average_ms<=0.001",
        timeout_s=90,
    )  # fmt: skip
    assert result.returncode == 1, result.stderr[-3000:]
    failures = list(ET.parse(run_dir / "junit.xml").getroot().iter("failure"))
    assert len(failures) == 1
    assert "p95_at_average_ms" in (run_dir / "summary.md").read_text()


def test_a_distributed_ramp_offers_the_asked_rate(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    result = _brink(
        "ramp", "--profile", "average", "--average-rps", "40", "--step-s", "6",
        "--timeout-s", "2", "--no-probe", "--workers", "2", "--run-dir", str(run_dir),
        "--threshold", "error_rate_at_average<=0.01",
        timeout_s=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads((run_dir / "report.json").read_text())
    offered = [stage["offered_rps"] for stage in report["stages"]]
    # Two worker processes together send the whole rate (Poisson: +-20% per short stage).
    assert sum(offered) / len(offered) == pytest.approx(40, rel=0.2)
