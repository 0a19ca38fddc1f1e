"""A real Prometheus scraping a real slow API, with brink's rules; stopping it leaves nothing."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from pathlib import Path

import httpx2
import pytest

from loadtests.native._binaries import alive
from loadtests.native.process import ProcessFailed, free_port
from loadtests.native.prometheus import NativePrometheus, available, native_config, unscraped
from tests.support import Spawn

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not available(), reason="no Prometheus binary (Debian: prometheus)"),
]
FAST = {"BRINK_SLOW_API__BASE_LATENCY_S": "0.001", "BRINK_SLOW_API__JITTER_SIGMA": "0"}


def _poll(check: Callable[[], bool], timeout_s: float, what: str) -> None:
    """Poll ``check`` against a deadline (a few scrapes at 2 s); fail with ``what``."""
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not seen within {timeout_s} s")
        time.sleep(0.2)


def _processes_mentioning(text: str) -> list[int]:
    """Live pids whose command line contains ``text``."""
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if text in cmdline.read_bytes().decode(errors="replace") and alive(
                pid := int(cmdline.parent.name)
            ):
                found.append(pid)
        except OSError:
            continue
    return found


def test_scrapes_the_slow_api_and_evaluates_the_rules(
    spawn_slow_api: Spawn, tmp_path: Path
) -> None:
    served = spawn_slow_api(FAST)
    target = served.base_url.removeprefix("http://")
    prometheus = NativePrometheus(free_port(), {"slow-api": target}, tmp_path / "prometheus")
    with prometheus, httpx2.Client(timeout=5.0) as client:
        assert prometheus.process is not None
        pid = prometheus.process.pid

        def quotes_then(query: str) -> Callable[[], bool]:
            def check() -> bool:
                client.get(served.base_url + "/quote", params={"item_id": 1}).raise_for_status()
                return bool(prometheus.query(query, client))

            return check

        _poll(quotes_then('up{job="slow-api"} == 1'), 20, "up == 1 for the slow API")
        _poll(
            quotes_then('brink_slow_api_requests_total{job="slow-api", status="200"}'),
            20,
            "a brink_slow_api_* series",
        )
        # The rules are loaded and evaluated: a rate needs two scrapes, then one evaluation.
        _poll(
            quotes_then('job_status:brink_slow_api_requests:rate10s{job="slow-api"} > 0'),
            30,
            "a recording rule over the slow API",
        )
        groups = client.get(prometheus.url + "/api/v1/rules").json()["data"]["groups"]
        assert {"brink-slo", "brink-http", "brink-alerts"} <= {group["name"] for group in groups}
        broken = [rule["name"] for g in groups for rule in g["rules"] if rule["health"] == "err"]
        assert broken == []

    assert not prometheus.running()
    assert not alive(pid)
    assert _processes_mentioning(str(prometheus.config_path)) == []
    assert (tmp_path / "prometheus" / "data").is_dir()


def test_wait_first_scrape_returns_once_every_target_was_scraped(
    spawn_slow_api: Spawn, tmp_path: Path
) -> None:
    # One live target and one nobody listens on: both are scraped (up 1 and up 0) when
    # wait_first_scrape() returns, although Prometheus applies its targets ~5 s after /-/ready.
    served = spawn_slow_api(FAST)
    down = f"127.0.0.1:{free_port()}"
    targets = {"slow-api": served.base_url.removeprefix("http://"), "locust": down}
    with NativePrometheus(free_port(), targets, tmp_path) as prometheus:
        prometheus.wait_first_scrape()
        active = httpx2.get(prometheus.url + "/api/v1/targets", timeout=5.0).json()["data"]
        health = {t["labels"]["job"]: t["health"] for t in active["activeTargets"]}
        assert health == {"slow-api": "up", "locust": "down"}
        assert all(not t["lastScrape"].startswith("0001-") for t in active["activeTargets"])
        up = {r["metric"]["job"]: r["value"][1] for r in prometheus.query("up")}
        assert up == {"slow-api": "1", "locust": "0"}


def test_no_first_scrape_in_time_fails_clearly(tmp_path: Path) -> None:
    # Shorter than Prometheus' 5 s target-update throttle: the first scrape cannot come in time.
    prometheus = NativePrometheus(free_port(), {"slow-api": "127.0.0.1:1"}, tmp_path)
    with prometheus, pytest.raises(ProcessFailed, match=r"did not scrape slow-api \(127.0.0.1:1\)"):
        prometheus.wait_first_scrape(0.5)
    with pytest.raises(ProcessFailed, match="not running"):
        prometheus.wait_first_scrape(0.5)


def test_unscraped_names_the_targets_still_unknown() -> None:
    jobs = {"slow-api": "127.0.0.1:1", "locust": "127.0.0.1:2", "postgres": "127.0.0.1:3"}
    active = [
        {"labels": {"job": "slow-api"}, "health": "up"},
        {"labels": {"job": "locust"}, "health": "unknown"},
    ]
    assert unscraped(active, jobs) == ["locust (127.0.0.1:2)", "postgres (127.0.0.1:3)"]
    active.append({"labels": {"job": "postgres"}, "health": "down"})
    active[1]["health"] = "down"
    assert unscraped(active, jobs) == []


def test_a_taken_port_fails_clearly(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        prometheus = NativePrometheus(port, {"slow-api": "127.0.0.1:1"}, tmp_path)
        with pytest.raises(ProcessFailed, match=f"port {port}"):
            prometheus.start()
    assert not prometheus.running()


def test_only_the_fixed_job_names() -> None:
    with pytest.raises(ValueError, match="unknown scrape job"):
        native_config({"demo_service": "127.0.0.1:8000"})
