"""One run attached to a running stack, in order: refuse early, snapshot, set, run, put back.

``brink ramp`` and ``brink scenario`` take the same two options
(:mod:`loadtests.attach.options`); :func:`attached` is what both do with the stack they name:

1. translate the run's settings into live knobs, refusing at once a setting that has none;
2. find the stack (``stack.json`` or the Compose files), refuse the process faults it cannot
   take, get its admin token (from the stack, never from a flag);
3. read every knob, set the run's; yield :class:`Attached` for the run;
4. put every knob back as found, however the block ends (an error, Ctrl-C, SIGTERM: the CLI
   turns those into an exception, which passes through here).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager, ExitStack, contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path

import httpx2

from loadtests.attach.generator_targets import scraped_while_running
from loadtests.attach.live_settings import LiveSettings, live_changes, needs_applied
from loadtests.attach.options import StackChoice
from loadtests.attach.process_faults import (
    PidProcessFaults,
    docker_faults,
    refuse_process_faults,
)
from loadtests.attach.running_stack import (
    AttachError,
    RunningStack,
    admin_token,
    find_compose,
    find_native,
)
from loadtests.faults.injector import FaultError, KnobInjector, ProcessFaults
from loadtests.faults.spec import FaultSchedule
from loadtests.native._binaries import alive

Say = Callable[[str], None]
DRIVER_LOCK = "driver.pid"
"""Holds the PID of the run that drives a stack, while it does."""
SHARED_LEDGER_NOTE = (
    "the stack is shared: orders others wrote meanwhile (a web UI run) are not counted as "
    "unexpected; lost, refused-yet-present, duplicates and stock are checked as always"
)


def find(choice: StackChoice) -> RunningStack:
    if choice.kind == "native":
        return find_native(choice.directory)
    return find_compose(choice.directory)


@dataclass(frozen=True)
class Attached:
    """A running stack a run drives: URLs, token, live knobs, process faults."""

    stack: RunningStack
    token: str
    live: LiveSettings
    process_faults: ProcessFaults | None

    @property
    def label(self) -> str:
        return f"{self.stack.kind} stack (attached)"

    def expose(self, address: str, labels: Mapping[str, str]) -> AbstractContextManager[object]:
        """Have the stack's Prometheus scrape the generator on ``address`` while in the block:
        a ``brink up`` with Prometheus, or the Compose lab, whose Prometheus is told this
        machine's name as its container sees it. Nothing to do without a targets folder, or
        with one this process cannot write (one Docker created, owned by root): the run goes
        on, its generator unseen, as on a stack without Prometheus."""
        folder = self.stack.prometheus_targets_dir
        if folder is None or not folder.is_dir() or not os.access(folder, os.W_OK):
            return nullcontext()
        return scraped_while_running(folder, address, labels, host=self.stack.host_from_prometheus)


@contextmanager
def attached(
    choice: StackChoice,
    settings: Mapping[str, str],
    say: Say,
    faults: FaultSchedule | None = None,
    *,
    transport: httpx2.BaseTransport | None = None,
) -> Iterator[Attached]:
    """The running stack ``choice`` names, set as the run needs; put back on the way out.

    Raises :class:`AttachError` (before any change) when a setting has no live knob, no stack
    runs, a process fault cannot be played on it, or its knobs cannot be read or set.
    """
    needs = live_changes(settings)
    stack = find(choice)
    try:
        refuse_process_faults(faults, stack)
    except ValueError as exc:
        raise AttachError(str(exc)) from None
    token = admin_token(stack)
    with ExitStack() as held:
        held.enter_context(sole_driver(driver_lock(choice, stack)))
        say(f"attached to the running {stack.kind} stack: service {stack.service_url}")
        knobs = held.enter_context(
            KnobInjector(stack.service_url, stack.slow_api_url, token, transport=transport)
        )
        live = LiveSettings(knobs, needs)
        try:
            live.snapshot()
        except FaultError as exc:
            hint = "is it up (brink up, or docker compose up -d)? Is its admin token this one?"
            raise AttachError(f"cannot read the stack's knobs: {exc}; {hint}") from None
        processes = _process_faults(stack, faults)
        held.enter_context(needs_applied(live, say))
        if isinstance(processes, PidProcessFaults):
            held.callback(processes.close)  # resumed before the knobs are put back
        yield Attached(stack, token, live, processes)


def driver_lock(choice: StackChoice, stack: RunningStack) -> Path:
    """The file that says which run drives the stack now."""
    if stack.kind == "native":
        return choice.directory / DRIVER_LOCK
    return Path(tempfile.gettempdir()) / f"brink-compose-{stack.compose_project}-{DRIVER_LOCK}"


@contextmanager
def sole_driver(lock: Path) -> Iterator[None]:
    """One run at a time per stack: two would each put back what the other had set."""
    lock.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(lock, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except FileExistsError:
        holder = _holder(lock)
        if holder is not None and not alive(holder):
            lock.unlink(missing_ok=True)  # its run died without cleaning up
            with sole_driver(lock):
                yield
            return
        raise AttachError(
            f"another run (pid {holder}) drives this stack now: wait until it ends (two at once"
            f" would each put back what the other set); no run going? delete {lock}"
        ) from None
    with os.fdopen(fd, "w") as file:
        file.write(f"{os.getpid()}\n")
    try:
        yield
    finally:
        lock.unlink(missing_ok=True)


def _holder(lock: Path) -> int | None:
    try:
        return int(lock.read_text().strip())
    except (OSError, ValueError):
        return None


def _process_faults(stack: RunningStack, faults: FaultSchedule | None) -> ProcessFaults | None:
    """By PID natively; under Compose, Docker only when the schedule has a process fault."""
    if stack.kind == "native":
        return PidProcessFaults(stack)
    if faults is not None and any(step.action.is_process for step in faults.steps):
        return docker_faults(stack)
    return None
