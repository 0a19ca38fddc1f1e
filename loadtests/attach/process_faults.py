"""Process faults on an attached stack: by PID on ``brink up``'s, through Docker on Compose's.

``brink up`` owns its processes and watches them: when one exits, it stops the whole stack. So
on an attached native stack only the faults that leave every process running are played:
``pause`` (SIGSTOP, then SIGCONT: the process group of the service or the slow API, or every
process of the Postgres cluster, the postmaster first, found by its data dir) and the ``cpu``
throttle (the same duty cycle as on a private stack). ``restart``, ``kill`` and
``kill_backend`` are refused before the run starts (:func:`refuse_process_faults`, with the
reasons of :data:`REFUSED_ON_NATIVE`). On a private stack (drop ``--stack``) they all work.

Under Compose, :class:`~loadtests.faults.docker_faults.DockerProcessFaults` plays them all
(containers restart without anyone stopping the lab); it needs the Docker engine.
"""

from __future__ import annotations

import contextlib
import importlib
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from loadtests.attach.running_stack import AttachError, RunningStack
from loadtests.faults.docker_faults import DockerProcessFaults
from loadtests.faults.injector import FaultError
from loadtests.faults.native import DUTY_PERIOD_S, SignalledParts
from loadtests.faults.spec import FaultSchedule
from loadtests.native._binaries import signal_each, working_in

PART_PROCESSES = {"service": "demo service", "slow_api": "slow API", "postgres": "Postgres"}
"""Fault part → its name among ``stack.json``'s PIDs."""
_EXITS = "brink up would see its part exit and stop the whole stack"
REFUSED_ON_NATIVE = {
    "restart": _EXITS,
    "kill": _EXITS,
    "kill_backend": "brink finds the backend and times Postgres' recovery only on a Postgres it"
    " started itself",
}
"""Process faults an attached native stack cannot take, and why."""


def refusal(part: str, op: str) -> str:
    return (
        f"{part}.{op} cannot run on a stack brink up runs: {REFUSED_ON_NATIVE[op]}; "
        "run it on a private stack (drop --stack)"
    )


def refuse_process_faults(schedule: FaultSchedule | None, stack: RunningStack) -> None:
    """ValueError, before any load, for a process fault the attached stack cannot take."""
    if schedule is None or stack.kind != "native":
        return
    for step in schedule.steps:
        action = step.action
        if action.is_process and action.name in REFUSED_ON_NATIVE:
            raise ValueError(refusal(action.target, action.name))


def docker_faults(stack: RunningStack) -> DockerProcessFaults:
    """Process faults on the Compose project's containers; AttachError without an engine."""
    # Imported by name: mypy would take ``docker`` for this repo's docker/ folder.
    docker: Any = importlib.import_module("docker")
    try:
        client = docker.from_env()
    except docker.errors.DockerException as exc:
        raise AttachError(f"process faults under Compose need the Docker engine: {exc}") from None
    return DockerProcessFaults(client, stack.compose_project or "brink")


class PidProcessFaults(SignalledParts):
    """:class:`~loadtests.faults.injector.ProcessFaults` on ``brink up``'s processes, by PID."""

    def __init__(self, stack: RunningStack, *, duty_period_s: float = DUTY_PERIOD_S) -> None:
        super().__init__(duty_period_s)
        self.stack = stack

    def restart(self, part: str) -> None:
        raise FaultError(refusal(part, "restart"))

    def kill(self, part: str) -> None:
        raise FaultError(refusal(part, "kill"))

    def kill_backend(self, part: str) -> float:
        raise FaultError(refusal(part, "kill_backend"))

    def _sender(self, part: str) -> Callable[[int], None]:
        name = PART_PROCESSES.get(part)
        pid = self.stack.pids.get(name or "")
        if pid is None:
            raise ValueError(f"no process for part {part!r} in the stack's description")
        if part == "postgres":
            data_dir = self.stack.postgres_data_dir
            return lambda signum: signal_each(_cluster(pid, data_dir), signum)
        return lambda signum: _signal_group(pid, signum)


def _cluster(postmaster: int, data_dir: Path | None) -> list[int]:
    """The postmaster first (it forks no backend once stopped), then the rest of the cluster."""
    others = working_in(data_dir) if data_dir is not None else []
    return [postmaster, *(pid for pid in others if pid != postmaster)]


def _signal_group(pid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signum)  # brink up starts each part in its own process group
