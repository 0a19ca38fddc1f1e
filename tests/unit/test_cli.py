"""Argument parsing of the ``brink`` command line: no processes, no sockets."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from loadtests.cli import (
    build_parser,
    cmd_scenario,
    cmd_up,
    main,
    port,
    scenario_options,
    setting,
    stack_config,
)
from loadtests.native.stack import StackConfig
from loadtests.scenarios.base import ScenarioOptions


def parse(*argv: str) -> argparse.Namespace:
    return build_parser().parse_args(list(argv))


def test_up_defaults_match_stack_config() -> None:
    args = parse("up")
    config = stack_config(args)
    defaults = StackConfig()

    assert args.func is cmd_up
    assert (config.host, config.service_port, config.slow_api_port, config.pg_port) == (
        defaults.host,
        defaults.service_port,
        defaults.slow_api_port,
        defaults.pg_port,
    )
    assert config.extra_env == {}
    assert config.run_dir == defaults.run_dir.absolute()


def test_up_flags_reach_the_config(tmp_path: Path) -> None:
    args = parse(
        "up",
        "--host=127.0.0.2",
        "--service-port=9000",
        "--slow-api-port=9001",
        "--pg-port=9002",
        f"--run-dir={tmp_path}",
        "--set",
        "DB__POOL_MAX=10",
        "--set",
        "slow_api__base_latency_s=0.05",
        "--set",
        "BRINK_ADMIN_TOKEN=a=b=c",
    )
    config = stack_config(args)

    assert (config.host, config.service_port, config.slow_api_port, config.pg_port) == (
        "127.0.0.2",
        9000,
        9001,
        9002,
    )
    assert config.run_dir == tmp_path
    assert config.extra_env == {
        "BRINK_DB__POOL_MAX": "10",
        "BRINK_SLOW_API__BASE_LATENCY_S": "0.05",
        "BRINK_ADMIN_TOKEN": "a=b=c",
    }


def test_a_later_set_wins() -> None:
    config = stack_config(parse("up", "--set", "DB__POOL_MAX=1", "--set", "DB__POOL_MAX=2"))
    assert config.extra_env == {"BRINK_DB__POOL_MAX": "2"}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("DB__POOL_MAX=10", ("BRINK_DB__POOL_MAX", "10")),
        ("db__pool_max=10", ("BRINK_DB__POOL_MAX", "10")),
        ("BRINK_CPU__ITERATIONS=7", ("BRINK_CPU__ITERATIONS", "7")),
        ("EXTERNAL__URL=", ("BRINK_EXTERNAL__URL", "")),
    ],
)
def test_setting_accepts(text: str, expected: tuple[str, str]) -> None:
    assert setting(text) == expected


@pytest.mark.parametrize("text", ["DB__POOL_MAX", "=10", "1DB=2", "DB POOL=1", "DB-POOL=1"])
def test_setting_rejects(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError, match="KEY=VALUE"):
        setting(text)


def test_setting_error_does_not_echo_the_value() -> None:
    with pytest.raises(argparse.ArgumentTypeError) as caught:
        setting("NOT VALID=s3cret-value")
    assert "s3cret" not in str(caught.value)


@pytest.mark.parametrize("text", ["0", "65536", "-1", "http", "80.5", ""])
def test_port_rejects(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError, match="TCP port"):
        port(text)


def test_port_accepts_the_range_ends() -> None:
    assert (port("1"), port("65535")) == (1, 65535)


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["nope"],
        ["up", "--set", "DB__POOL_MAX"],
        ["up", "--service-port", "http"],
        ["up", "--pg-port", "70000"],
        ["up", "--unknown"],
        ["up", "extra"],
    ],
)
def test_bad_arguments_exit_2_with_usage(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: brink")


@pytest.mark.parametrize("argv", [["--help"], ["up", "--help"], ["up", "-h"]])
def test_help_exits_0(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: brink")


def test_up_help_names_every_flag(capsys: pytest.CaptureFixture[str]) -> None:
    main(["up", "--help"])
    out = capsys.readouterr().out
    for flag in ("--host", "--service-port", "--slow-api-port", "--pg-port", "--run-dir", "--set"):
        assert flag in out


def test_up_refuses_a_set_that_overrides_a_flag(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["up", "--set", "SERVER__PORT=1"]) == 1  # refused before anything starts
    err = capsys.readouterr().err
    assert "BRINK_SERVER__PORT" in err


# --- brink scenario ------------------------------------------------------------------------------


def test_scenario_defaults() -> None:
    args = parse("scenario", "tipping-point")
    options = scenario_options(args)

    assert args.func is cmd_scenario
    assert args.name == "tipping-point"
    assert options == ScenarioOptions()
    assert args.run_dir is None
    assert not args.list


def test_scenario_flags_reach_the_options(tmp_path: Path) -> None:
    args = parse(
        "scenario", "metastable", "--quick", "--step-s", "7.5", "--seed", "3",
        "--slo-ms", "250", "--workers", "2", "--repeat", "5",
        "--set", "DB__POOL_MAX=4", "--set", "BRINK_DB__EXTRA_LATENCY_S=0.05",
        "--run-dir", str(tmp_path / "run"),
    )  # fmt: skip
    options = scenario_options(args)

    assert options == ScenarioOptions(
        quick=True,
        step_s=7.5,
        seed=3,
        slo_s=0.25,
        workers=2,
        repeat=5,
        settings={"BRINK_DB__POOL_MAX": "4", "BRINK_DB__EXTRA_LATENCY_S": "0.05"},
    )
    assert args.run_dir == tmp_path / "run"


@pytest.mark.parametrize(
    "argv",
    [
        ["scenario", "x", "--repeat", "0"],
        ["scenario", "x", "--workers", "-1"],
        ["scenario", "x", "--step-s", "0"],
        ["scenario", "x", "--slo-ms", "abc"],
        ["scenario", "x", "--set", "lower case=1"],
    ],
)
def test_scenario_bad_flags_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == 2
    assert "usage: brink scenario" in capsys.readouterr().err


def test_scenario_help_lists_the_six_scenarios(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["scenario", "--help"]) == 0
    out = capsys.readouterr().out
    for name in (
        "average-vs-peak", "tipping-point", "retry-storm", "hidden-pressure-point",
        "fragile-vs-resilient", "metastable",
    ):  # fmt: skip
        assert f"\n  {name} " in out, name
    for flag in ("--list", "--quick", "--step-s", "--seed", "--slo-ms", "--workers", "--repeat"):
        assert flag in out
    assert "--set" in out
    assert "--run-dir" in out


def test_ramp_and_scenario_name_the_same_options_alike() -> None:
    parser = build_parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices
    shared = ("--run-dir", "--set", "--stack", "--stack-dir", "--seed", "--slo-ms", "--workers",
              "--non-durable-postgres")  # fmt: skip
    for name in ("ramp", "scenario"):
        flags = set(commands[name]._option_string_actions)
        assert set(shared) <= flags, (name, set(shared) - flags)
    # the scenario's old name for its run folder still parses, to the same place
    old = parser.parse_args(["scenario", "tipping-point", "--out", "x"])
    assert old.run_dir == Path("x")
