"""One attached run, on an in-memory stack: the options, the early refusals, set then put back
(also on a stop signal), and the load generator listed for the stack's Prometheus meanwhile."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from loadtests.attach.options import COMPOSE_DIR, StackChoice
from loadtests.attach.running_stack import STACK_FILE, AttachError, RunningStack
from loadtests.attach.session import attached, sole_driver
from loadtests.cli import build_parser, scenario_options
from loadtests.faults.spec import FaultSchedule, parse_step
from loadtests.native.stack import ADMIN_TOKEN_ENV, StackConfig
from tests.unit.fake_stack import SERVICE, SLOW_API, TOKEN, FakeStack, dead_pid

LABELS = {"scenario": "tipping-point", "phase": "ramp"}


def test_ramp_and_scenario_take_the_same_stack_options() -> None:
    parser = build_parser()
    ramp = parser.parse_args(["ramp", "--stack", "native", "--stack-dir", "up"])
    scenario = parser.parse_args(["scenario", "x", "--stack", "native", "--stack-dir", "up"])
    assert (ramp.stack, ramp.stack_dir) == (scenario.stack, scenario.stack_dir)
    assert scenario_options(scenario).stack == StackChoice("native", Path("up").absolute())


def test_each_kind_has_its_default_folder() -> None:
    parser = build_parser()
    native = scenario_options(parser.parse_args(["scenario", "x", "--stack", "native"]))
    compose = scenario_options(parser.parse_args(["scenario", "x", "--stack", "compose"]))
    assert native.stack == StackChoice("native", StackConfig().run_dir.absolute())
    assert compose.stack == StackChoice("compose", COMPOSE_DIR)
    assert scenario_options(parser.parse_args(["scenario", "x"])).stack is None


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["ramp", "--stack-dir", "up"], "--stack-dir needs --stack"),
        (["ramp", "--stack", "native", "--target", "http://127.0.0.1:1"], "choose one"),
        (["scenario", "tipping-point", "--stack", "compose", "--non-durable-postgres"], "private"),
    ],
)
def test_options_that_do_not_go_together_are_a_usage_error(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    args = build_parser().parse_args(argv)
    assert args.func(args) == 2
    assert message in capsys.readouterr().err


def test_a_token_flag_does_not_exist() -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["ramp", "--stack", "native", "--admin-token", "x"])


def _running(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> StackChoice:
    """``stack.json`` of a live ``brink up`` (this process) whose URLs the fake answers."""
    monkeypatch.delenv(ADMIN_TOKEN_ENV, raising=False)
    (tmp_path / "admin-token").write_text(TOKEN + "\n")
    (tmp_path / "targets").mkdir()
    stack = RunningStack(
        kind="native",
        urls={"service": SERVICE, "slow_api": SLOW_API, "postgres": "postgresql://x@h:1/brink"},
        admin_token_file=tmp_path / "admin-token",
        pids={"brink up": os.getpid()},
        prometheus_targets_dir=tmp_path / "targets",
    )
    (tmp_path / STACK_FILE).write_text(json.dumps(stack.to_dict()))
    return StackChoice("native", tmp_path)


def test_a_setting_without_a_live_knob_is_refused_before_looking_for_a_stack(
    tmp_path: Path,
) -> None:
    nowhere = StackChoice("native", tmp_path / "no-brink-up-here")
    with (
        pytest.raises(AttachError, match="BRINK_CPU__ITERATIONS: read only at start-up"),
        attached(nowhere, {"BRINK_CPU__ITERATIONS": "2000"}, print),
    ):
        pytest.fail("the block must not run")


def test_a_process_fault_the_stack_cannot_take_is_refused_before_any_change(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = FakeStack()
    faults = FaultSchedule((parse_step("at 5s postgres.kill"),))
    choice = _running(tmp_path, monkeypatch)
    with (
        pytest.raises(AttachError, match=r"postgres\.kill cannot run on a stack brink up runs"),
        attached(choice, {}, print, faults, transport=fake.transport),
    ):
        pytest.fail("the block must not run")
    assert fake.calls == []


def test_the_run_sees_its_settings_and_the_stack_gets_its_own_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = FakeStack()
    found = fake.state()
    choice = _running(tmp_path, monkeypatch)
    settings = {"BRINK_DB__POOL_MAX": "2", "BRINK_SLOW_API__EXTRA_LATENCY_S": "0.2"}

    class Stop(Exception):
        pass

    def interrupted_run() -> None:
        with attached(choice, settings, print, transport=fake.transport) as run:
            assert run.token == TOKEN
            assert (fake.faults["pool_size"], fake.control["extra_latency_s"]) == (2, 0.2)
            with run.expose("127.0.0.1:19999", LABELS) as listed:
                groups = json.loads(Path(str(listed)).read_text())
                assert groups == [{"targets": ["127.0.0.1:19999"], "labels": LABELS}]
            assert list((tmp_path / "targets").iterdir()) == []
            raise Stop("SIGTERM")

    with pytest.raises(Stop):
        interrupted_run()
    assert fake.state() == found


def test_a_stack_that_does_not_answer_is_refused_with_a_hint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = FakeStack()
    fake.failing.add("/control")
    choice = _running(tmp_path, monkeypatch)
    with (
        pytest.raises(AttachError, match=r"cannot read the stack's knobs: .*500.*is it up"),
        attached(choice, {}, print, transport=fake.transport),
    ):
        pytest.fail("the block must not run")


def test_one_run_drives_a_stack_at_a_time(tmp_path: Path) -> None:
    lock = tmp_path / "driver.pid"

    def second_run() -> None:
        with sole_driver(lock):
            pytest.fail("a second driver must not run")

    with sole_driver(lock):
        assert lock.read_text() == f"{os.getpid()}\n"
        with pytest.raises(AttachError, match=rf"another run \(pid {os.getpid()}\) drives"):
            second_run()
    assert not lock.exists()


def test_a_dead_runs_lock_is_taken_over(tmp_path: Path) -> None:
    lock = tmp_path / "driver.pid"
    lock.write_text(f"{dead_pid()}\n")
    with sole_driver(lock):
        assert lock.read_text() == f"{os.getpid()}\n"
    assert not lock.exists()
