"""Process faults on an attached stack: what an attached native stack refuses (before the run)
and how it pauses by PID; Compose takes them all."""

from __future__ import annotations

import importlib
import os
import signal
from pathlib import Path

import pytest

from loadtests.attach import process_faults
from loadtests.attach.process_faults import PidProcessFaults, refuse_process_faults
from loadtests.attach.running_stack import AttachError, RunningStack
from loadtests.faults.injector import FaultError
from loadtests.faults.spec import FaultSchedule, parse_step

URLS = {"service": "http://127.0.0.1:1", "slow_api": "http://127.0.0.1:2"}
NATIVE = RunningStack(
    kind="native",
    urls=URLS,
    pids={"demo service": 101, "slow API": 102, "Postgres": 200},
    postgres_data_dir=Path("/tmp/brink-pg-x/data"),
)
COMPOSE = RunningStack(kind="compose", urls=URLS, compose_project="brink")


def _schedule(*steps: str) -> FaultSchedule:
    return FaultSchedule(tuple(parse_step(step) for step in steps))


@pytest.mark.parametrize(
    "step", ["at 1s postgres.restart", "at 1s service.kill", "at 1s postgres.kill_backend"]
)
def test_an_attached_native_stack_refuses_what_would_stop_brink_up(step: str) -> None:
    with pytest.raises(ValueError, match=r"cannot run on a stack brink up runs.*drop --stack"):
        refuse_process_faults(_schedule(step), NATIVE)
    refuse_process_faults(_schedule(step), COMPOSE)  # Docker restarts containers itself


def test_pauses_and_throttles_are_played_on_an_attached_native_stack() -> None:
    steps = ("at 1s postgres.pause for 2s", "at 5s service.cpu=0.5 for 2s", "at 9s slow_api.pause")
    refuse_process_faults(_schedule(*steps), NATIVE)
    refuse_process_faults(None, NATIVE)


def test_pause_signals_the_process_group_and_postgres_the_whole_cluster(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sent: list[tuple[str, int, int]] = []
    monkeypatch.setattr(os, "killpg", lambda pid, sig: sent.append(("group", pid, sig)))
    monkeypatch.setattr(
        process_faults, "signal_each", lambda pids, sig: sent.extend(("each", p, sig) for p in pids)
    )
    monkeypatch.setattr(process_faults, "working_in", lambda data_dir: [201, 200, 202])
    faults = PidProcessFaults(NATIVE)
    faults.pause("service")
    faults.pause("postgres")
    faults.close()  # resumes what is still paused
    stop, cont = signal.SIGSTOP, signal.SIGCONT
    assert sent == [
        ("group", 101, stop),
        ("each", 200, stop), ("each", 201, stop), ("each", 202, stop),  # postmaster first
        ("each", 200, cont), ("each", 201, cont), ("each", 202, cont),
        ("group", 101, cont),
    ]  # fmt: skip


def test_what_an_attached_stack_refuses_fails_also_when_called() -> None:
    faults = PidProcessFaults(NATIVE)
    for call in (faults.restart, faults.kill, faults.kill_backend):
        with pytest.raises(FaultError, match="drop --stack"):
            call("postgres")
    with pytest.raises(ValueError, match="no process for part 'nginx'"):
        faults.pause("nginx")


class _FakeDocker:
    """The ``docker`` package as far as :func:`docker_faults` uses it."""

    class errors:
        class DockerException(Exception):
            pass

    def __init__(self, engine_up: bool) -> None:
        self.engine_up = engine_up
        self.client = object()

    def from_env(self) -> object:
        if not self.engine_up:
            raise self.errors.DockerException("Error while fetching server API version")
        return self.client


def test_compose_process_faults_go_to_the_projects_containers(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    docker = _FakeDocker(engine_up=True)
    monkeypatch.setattr(importlib, "import_module", lambda name: docker)
    faults = process_faults.docker_faults(COMPOSE)
    assert (faults.client, faults.project) == (docker.client, "brink")


def test_compose_process_faults_without_an_engine_are_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    docker = _FakeDocker(engine_up=False)
    monkeypatch.setattr(importlib, "import_module", lambda name: docker)
    with pytest.raises(AttachError, match="need the Docker engine: Error while fetching"):
        process_faults.docker_faults(COMPOSE)
