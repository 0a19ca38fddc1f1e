"""``brink up`` as a user runs it: a real subprocess, real servers, real signals."""

from __future__ import annotations

import os
import re
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx2
import pytest

from loadtests.native import prometheus
from loadtests.native._binaries import alive, working_in
from loadtests.native.process import free_port, port_is_free
from loadtests.profiles import rates_around
from tests.support import sample_value

pytestmark = pytest.mark.integration

START_DEADLINE_S = 60.0
STOP_DEADLINE_S = 30.0


def poll_until(check: Callable[[], bool], deadline_s: float, what: str) -> None:
    deadline = time.monotonic() + deadline_s
    while not check():
        if time.monotonic() > deadline:
            pytest.fail(f"{what} not within {deadline_s:.0f} s")
        time.sleep(0.05)


def distinct_free_ports(count: int) -> list[int]:
    ports: set[int] = set()
    while len(ports) < count:
        ports.add(free_port())
    return sorted(ports)


def pg_temp_dirs(pg_port: int) -> list[Path]:
    """``brink-pg-*`` dirs whose cluster was configured for ``pg_port``, running or not."""
    found = []
    for conf in Path(tempfile.gettempdir()).glob("brink-pg-*/data/postgresql.conf"):
        try:
            if f"\nport = {pg_port}\n" in conf.read_text():
                found.append(conf.parent.parent)
        except OSError:
            continue  # another run's dir, removed while we looked
    return found


def postmaster_pid(temp_dir: Path) -> int:
    return int((temp_dir / "data" / "postmaster.pid").read_text().split()[0])


def children_of(pid: int) -> list[int]:
    found = []
    for stat_file in Path("/proc").glob("[0-9]*/stat"):
        try:
            if int(stat_file.read_text().rpartition(")")[2].split()[1]) == pid:
                found.append(int(stat_file.parent.name))
        except (OSError, ValueError, IndexError):
            continue
    return found


def stack_processes(up: Up) -> list[int]:
    """The demo processes ``brink up`` started and every process of its Postgres."""
    (pg_dir,) = pg_temp_dirs(up.pg_port)
    return [*children_of(up.process.pid), *working_in(pg_dir / "data")]


def answers(url: str) -> bool:
    try:
        return httpx2.get(url, timeout=1.0).status_code == 200
    except httpx2.TransportError:
        return False


@dataclass
class Up:
    """One ``brink up`` child process and where it listens."""

    process: subprocess.Popen[bytes]
    service_port: int
    slow_api_port: int
    pg_port: int
    locust_port: int
    loadgen_metrics_port: int
    pg_exporter_port: int
    prometheus_port: int
    run_dir: Path
    out_path: Path
    err_path: Path

    @property
    def service(self) -> str:
        return f"http://127.0.0.1:{self.service_port}"

    @property
    def slow_api(self) -> str:
        return f"http://127.0.0.1:{self.slow_api_port}"

    @property
    def locust(self) -> str:
        return f"http://127.0.0.1:{self.locust_port}"

    @property
    def loadgen_metrics(self) -> str:
        return f"http://127.0.0.1:{self.loadgen_metrics_port}/metrics"

    @property
    def pg_exporter(self) -> str:
        return f"http://127.0.0.1:{self.pg_exporter_port}/metrics"

    @property
    def prometheus(self) -> str:
        return f"http://127.0.0.1:{self.prometheus_port}"

    def output(self) -> tuple[str, str]:
        return self.out_path.read_text(), self.err_path.read_text()

    def wait_ready(self) -> None:
        def ready() -> bool:
            if self.process.poll() is not None:
                out, err = self.output()
                pytest.fail(f"brink up exited {self.process.returncode}:\n{out}\n{err}")
            return all(
                answers(url)
                for url in (
                    self.service + "/readyz",
                    self.slow_api + "/healthz",
                    self.locust,
                    self.pg_exporter,
                )
            )

        poll_until(ready, START_DEADLINE_S, "service, slow API and Locust web UI")
        # Prometheus, last to start, waits for its first scrape of every target (~2-5 s).
        poll_until(lambda: "ready" in self.output()[0], 30, "the ready banner")

    def wait_exit(self) -> int:
        try:
            return self.process.wait(STOP_DEADLINE_S)
        except subprocess.TimeoutExpired:
            pytest.fail(f"brink up still running {STOP_DEADLINE_S:.0f} s later")

    def assert_nothing_left(self, pids: list[int]) -> None:
        ports = (self.service_port, self.slow_api_port, self.pg_port, self.locust_port)
        for port in (
            *ports,
            self.loadgen_metrics_port,
            self.pg_exporter_port,
            self.prometheus_port,
        ):
            assert port_is_free(port), f"port {port} still in use"
        assert [pid for pid in pids if alive(pid)] == []
        assert pg_temp_dirs(self.pg_port) == []


@pytest.fixture
def brink_up(tmp_path: Path) -> Iterator[Callable[..., Up]]:
    """Start ``python -m loadtests up`` on free ports; whatever is left is stopped after."""
    started: list[Up] = []

    def start(*extra: str, service_port: int | None = None, probe: bool = False) -> Up:
        service, slow_api, pg, locust, metrics, pg_exporter, prom = distinct_free_ports(7)
        service = service_port or service
        run_dir = tmp_path / f"run-{len(started)}"
        argv = [sys.executable, "-m", "loadtests", "up", f"--run-dir={run_dir}"]
        argv += [f"--service-port={service}", f"--slow-api-port={slow_api}", f"--pg-port={pg}"]
        argv += [f"--locust-port={locust}", f"--loadgen-metrics-port={metrics}"]
        argv += [f"--pg-exporter-port={pg_exporter}", f"--prometheus-port={prom}"]
        argv += [] if probe else ["--no-probe"]  # the probe adds ~15 s: one test runs it
        out, err = tmp_path / f"up-{len(started)}.out", tmp_path / f"up-{len(started)}.err"
        with out.open("wb") as out_file, err.open("wb") as err_file:
            process = subprocess.Popen(
                [*argv, *extra], stdout=out_file, stderr=err_file, cwd=tmp_path
            )
        up = Up(
            process, service, slow_api, pg, locust, metrics, pg_exporter, prom, run_dir, out, err
        )
        started.append(up)
        return up

    yield start
    for up in started:
        if up.process.poll() is None:
            up.process.send_signal(signal.SIGTERM)
            try:
                up.process.wait(STOP_DEADLINE_S)
            except subprocess.TimeoutExpired:
                up.process.kill()
                up.process.wait()


def test_up_serves_until_sigterm_then_leaves_nothing(brink_up: Callable[..., Up]) -> None:
    up = brink_up()
    up.wait_ready()

    out, err = up.output()
    for shown in (up.service, up.service + "/metrics", up.slow_api, str(up.run_dir)):
        assert shown in out
    assert f"postgresql://brink@127.0.0.1:{up.pg_port}/brink" in out
    token_file = up.run_dir / "admin-token"
    assert str(token_file) in out
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    token = token_file.read_text().strip()
    assert len(token) >= 24
    assert token not in out + err
    assert answers(up.service + "/metrics")

    (pg_dir,) = pg_temp_dirs(up.pg_port)
    pids = stack_processes(up)
    assert postmaster_pid(pg_dir) in pids
    assert len(pids) >= 5  # service, slow API, postmaster and its helpers

    up.process.send_signal(signal.SIGTERM)

    assert up.wait_exit() == 0
    up.assert_nothing_left(pids)
    assert not pg_dir.exists()
    assert {"postgres.log", "slow_api.log", "demo_service.log", "locust.log"} <= {
        path.name for path in up.run_dir.iterdir()
    }
    assert "stopped" in up.output()[1]


def _arrivals(up: Up) -> float:
    text = httpx2.get(up.loadgen_metrics, timeout=2.0).text
    return sample_value(text, "brink_loadgen_arrivals_total")


def test_the_locust_web_ui_runs_a_profile_against_the_stack(brink_up: Callable[..., Up]) -> None:
    up = brink_up(probe=True)
    up.wait_ready()
    page = httpx2.get(up.locust, timeout=5.0).text
    assert "load_profile" in page  # brink's custom parameters are in the UI
    # The form's rates bracket the knee the start-up probe predicted.
    found = re.search(r"predicted knee (\d+) req/s .*average ([\d.]+), peak ([\d.]+) req/s",
                      up.output()[0])  # fmt: skip
    assert found, up.output()
    predicted, average, peak = (float(group) for group in found.groups())
    assert (average, peak) == pytest.approx(rates_around(predicted), abs=1.0)  # printed rounded
    assert re.search(rf'"average_rps".{{0,200}}{average:g}', page), page[:3000]

    form = {
        "user_count": "1",
        "spawn_rate": "1",
        "host": up.service,
        "load_profile": "average",
        "average_rps": "20",
        "peak_rps": "40",
        "step_s": "5",
    }
    response = httpx2.post(up.locust + "/swarm", data=form, timeout=5.0)
    assert response.status_code == 200, response.text
    poll_until(lambda: _arrivals(up) >= 30, 20, "30 arrivals sent from the web UI's run")
    httpx2.post(up.locust + "/stop", timeout=5.0).raise_for_status()

    service_metrics = httpx2.get(up.service + "/metrics", timeout=2.0).text
    assert (
        sample_value(
            service_metrics,
            "brink_http_requests_total",
            {"route": "/items/{item_id}", "method": "GET", "status": "200"},
        )
        > 0
    )
    up.process.send_signal(signal.SIGTERM)
    assert up.wait_exit() == 0


@pytest.mark.skipif(not prometheus.available(), reason="no Prometheus binary installed")
def test_prometheus_scrapes_every_part_with_the_rules(brink_up: Callable[..., Up]) -> None:
    up = brink_up()
    up.wait_ready()

    def all_up() -> bool:
        try:
            body = httpx2.get(up.prometheus + "/api/v1/query", params={"query": "up"}).json()
        except httpx2.TransportError:
            return False
        values = {r["metric"]["job"]: r["value"][1] for r in body["data"]["result"]}
        return values == {"demo-service": "1", "slow-api": "1", "locust": "1", "postgres": "1"}

    poll_until(all_up, 30, "Prometheus scraping all four jobs")
    link = re.search(r"feedback loop +(\S+)", up.output()[0])
    assert link, up.output()
    assert "graph?g0.expr=job%3Abrink_loadgen_arrivals%3Arate10s" in link.group(1)
    assert link.group(1).startswith(up.prometheus + "/")
    assert httpx2.get(link.group(1), timeout=5.0).status_code == 200  # the page, not a redirect
    rules = httpx2.get(up.prometheus + "/api/v1/rules", timeout=5.0).json()["data"]["groups"]
    assert rules, "brink's rules are loaded"
    assert "pg_up 1.0" in httpx2.get(up.pg_exporter, timeout=5.0).text
    up.process.send_signal(signal.SIGTERM)
    assert up.wait_exit() == 0
    up.assert_nothing_left([])


def test_ctrl_c_stops_it_too(brink_up: Callable[..., Up]) -> None:
    up = brink_up()
    up.wait_ready()
    pids = stack_processes(up)

    up.process.send_signal(signal.SIGINT)

    assert up.wait_exit() == 0
    up.assert_nothing_left(pids)


def test_a_dying_part_is_reported_and_the_rest_stopped(brink_up: Callable[..., Up]) -> None:
    up = brink_up()
    up.wait_ready()
    (pg_dir,) = pg_temp_dirs(up.pg_port)
    pids = stack_processes(up)

    os.kill(postmaster_pid(pg_dir), signal.SIGKILL)

    assert up.wait_exit() == 1
    assert "Postgres is not running" in up.output()[1]
    up.assert_nothing_left(pids)


def test_a_taken_port_is_named_with_its_flag_and_its_holder(brink_up: Callable[..., Up]) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        up = brink_up(service_port=port)
        assert up.wait_exit() == 1
    err = up.output()[1]
    assert f"port {port}" in err
    assert "--service-port" in err
    holder = Path(f"/proc/{os.getpid()}/comm").read_text().strip()  # this test's own process
    assert f"held by {holder} (pid {os.getpid()}" in err
    assert pg_temp_dirs(up.pg_port) == []


def test_a_bad_setting_fails_start_up_naming_it(brink_up: Callable[..., Up]) -> None:
    up = brink_up("--set", "DB__POOL_MAX=0")
    assert up.wait_exit() == 1
    assert "BRINK_DB__POOL_MAX" in up.output()[1]
    up.assert_nothing_left([])


@pytest.mark.parametrize(
    "argv",
    [
        ["up", "--set", "DB__POOL_MAX"],
        ["up", "--service-port", "eighty"],
        ["up", "--no-such-flag"],
        ["no-such-command"],
        [],
    ],
)
def test_bad_arguments_exit_2(argv: list[str], tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "loadtests", *argv],
        capture_output=True,
        text=True,
        timeout=STOP_DEADLINE_S,
        cwd=tmp_path,
        check=False,
    )
    assert result.returncode == 2
    assert result.stderr.startswith("usage: brink")
    assert list(tmp_path.iterdir()) == []  # nothing started, nothing written
