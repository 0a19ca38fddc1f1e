"""End to end: a scenario attached to a running ``brink up`` shows on its Prometheus and leaves
every knob as it found it, also when interrupted.

``brink up`` runs as a workshop runs it (Postgres, slow API, demo service, Postgres exporter,
Prometheus; Locust's web UI left out to spare the CI box), its knobs first moved away from
their start-up values, as a workshop's would be. Then ``brink scenario average-vs-peak --quick
--stack native`` runs against it (short stages: the lesson's verdict is not the point here, the
plumbing is). Through Prometheus' HTTP API: the service's series of the run, and the load
generator's with the scenario and phase labels. Through the admin APIs: faults, resilience and
the slow API exactly as found. A second run is stopped with SIGINT mid-phase: the same. Last,
``brink up`` stops on SIGINT, removes its stack.json and leaves no process.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from contextlib import closing
from pathlib import Path
from typing import Any

import httpx2
import pytest

from loadtests.native import prometheus
from loadtests.native._binaries import alive
from loadtests.native.process import free_port

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(not prometheus.available(), reason="no Prometheus binary installed"),
]

SCENARIO = "average-vs-peak"
"""Two flat phases whose settings (pool size, DB hold) all have live knobs."""
STEP_S = "3"
"""Three stages of 3 s per phase: the shortest that still leaves each stage a measured window."""
UP_FLAGS = ("--service-port", "--slow-api-port", "--pg-port", "--pg-exporter-port",
            "--prometheus-port")  # fmt: skip
LIVED_IN = {
    "/admin/resilience": {"preset": "resilient", "shedding": {"limit": 40}},
    "/admin/faults": {"hot_items": 20},
    "/control": {"extra_latency_s": 0.01},
}
"""Knobs a workshop moved before the run: "as found" is not the start-up state."""


def _poll(check: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, f"{what}: not within {timeout_s:g} s"
        time.sleep(0.2)


def _has(path: Path, text: str) -> Callable[[], bool]:
    return lambda: path.exists() and text in path.read_text(errors="replace")


class Stack:
    """The running stack as seen through stack.json: its knobs and its Prometheus."""

    def __init__(self, run_dir: Path) -> None:
        self.description = json.loads((run_dir / "stack.json").read_text())
        self.urls: dict[str, str] = self.description["urls"]
        token = (run_dir / "admin-token").read_text().strip()
        self.client = httpx2.Client(headers={"Authorization": f"Bearer {token}"}, timeout=10)

    def _url(self, path: str) -> str:
        return self.urls["slow_api" if path == "/control" else "service"] + path

    def knobs(self) -> dict[str, Any]:
        """Every knob of the service (faults, resilience as in force) and the slow API."""
        answers = {path: self.client.get(self._url(path)) for path in LIVED_IN}
        assert all(answer.status_code == 200 for answer in answers.values()), answers
        return {path: answer.json() for path, answer in answers.items()}

    def move_knobs(self) -> None:
        for path, body in LIVED_IN.items():
            self.client.put(self._url(path), json=body).raise_for_status()

    def series(self, match: str, since: float) -> list[dict[str, str]]:
        response = self.client.get(
            self.urls["prometheus"] + "/api/v1/series",
            params={"match[]": match, "start": since},
        )
        found: list[dict[str, str]] = response.json()["data"]
        return found


def _scenario(up_dir: Path, out: Path, log: Path) -> subprocess.Popen[bytes]:
    argv = [sys.executable, "-m", "loadtests", "scenario", SCENARIO, "--quick",
            "--step-s", STEP_S, "--seed", "1", "--stack", "native", "--stack-dir", str(up_dir),
            "--run-dir", str(out)]  # fmt: skip
    with log.open("wb") as stderr:
        return subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=stderr)


def test_an_attached_scenario_is_seen_and_puts_everything_back(tmp_path: Path) -> None:
    up_dir, up_log = tmp_path / "up", tmp_path / "up.out"
    ports = [str(arg) for flag in UP_FLAGS for arg in (flag, free_port())]
    with up_log.open("wb") as out:
        up = subprocess.Popen(
            [sys.executable, "-m", "loadtests", "up", "--run-dir", str(up_dir), "--no-locust",
             *ports],
            stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        _poll(_has(up_log, "brink up: ready"), 60, "brink up ready")
        stack = Stack(up_dir)
        with closing(stack.client):
            stack.move_knobs()
            found = stack.knobs()
            _run_and_check(stack, up_dir, tmp_path, found)
            _interrupt_and_check(stack, up_dir, tmp_path, found)
    finally:
        up.send_signal(signal.SIGINT)
        try:
            up.wait(timeout=60)
        except subprocess.TimeoutExpired:
            up.kill()
            raise
    assert up.returncode == 0, up_log.read_text()[-2000:]
    assert not (up_dir / "stack.json").exists()
    pids = stack.description["pids"]
    _poll(lambda: not any(alive(pid) for pid in pids.values()), 10, f"all of {pids} gone")


def _run_and_check(stack: Stack, up_dir: Path, tmp_path: Path, found: dict[str, Any]) -> None:
    started, log = time.time(), tmp_path / "run.err"
    run = _scenario(up_dir, tmp_path / "run", log)
    assert run.wait(timeout=120) in (0, 1), log.read_text()[-3000:]  # 3: the run failed
    assert stack.knobs() == found
    assert "stack settings put back as found" in log.read_text()

    phases = {"average", "peak"}
    load = stack.series(f'brink_loadgen_arrivals_total{{scenario="{SCENARIO}"}}', started)
    assert {series["phase"] for series in load} == phases, load
    assert {series["job"] for series in load} == {"locust"}
    info = stack.series(f'brink_loadgen_run_info{{scenario="{SCENARIO}"}}', started)
    assert {series["phase"] for series in info} == phases, info
    orders = stack.series('brink_http_requests_total{job="demo-service",route="/orders"}', started)
    assert orders, "the service's series of the run are not in Prometheus"
    assert list((up_dir / "prometheus" / "targets").glob("*.json")) == []


def _interrupt_and_check(stack: Stack, up_dir: Path, tmp_path: Path, found: dict[str, Any]) -> None:
    log = tmp_path / "stopped.err"
    run = _scenario(up_dir, tmp_path / "stopped", log)
    try:
        _poll(_has(log, "stage 1/3"), 60, "the interrupted run's first phase under way")
        assert stack.knobs() != found  # the scenario's pool and DB hold are in force
        run.send_signal(signal.SIGINT)
        assert run.wait(timeout=60) == 3
    finally:
        if run.poll() is None:
            run.kill()
    said = log.read_text()
    assert "SIGINT received" in said
    assert "stack settings put back as found" in said
    assert stack.knobs() == found
    assert list((up_dir / "prometheus" / "targets").glob("*.json")) == []
