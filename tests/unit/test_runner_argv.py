"""The Locust command line `brink ramp` builds: caps passed on, every listener on loopback."""

from __future__ import annotations

from pathlib import Path

from loadtests.runner import RampConfig, _locust_argv


def _flag(argv: list[str], name: str) -> str:
    return argv[argv.index(name) + 1]


def test_caps_and_profile_reach_locust(tmp_path: Path) -> None:
    config = RampConfig(profile="spike", average_rps=30, peak_rps=60, rps_cap=500)
    argv = _locust_argv(config, "http://127.0.0.1:8000", tmp_path / "out.json", 9999)
    assert _flag(argv, "--load-profile") == "spike"
    assert _flag(argv, "--rps-cap") == "500"
    assert _flag(argv, "--brink-metrics-port") == "9999"
    assert "--headless" in argv
    assert "--processes" not in argv


def test_a_distributed_master_listens_on_loopback_only(tmp_path: Path) -> None:
    argv = _locust_argv(RampConfig(workers=2), "http://127.0.0.1:8000", tmp_path / "o.json", 1)
    assert _flag(argv, "--processes") == "2"
    assert _flag(argv, "--master-bind-host") == "127.0.0.1"
    assert _flag(argv, "--master-bind-port") == _flag(argv, "--master-port")
