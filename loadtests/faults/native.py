"""Process faults on the processes a :class:`~loadtests.native.stack.NativeStack` started.

Pause is SIGSTOP/SIGCONT (the whole process group, or every process of the Postgres cluster):
connections stay open and simply stall, as with ``docker pause``. Restart and kill use
:class:`~loadtests.native.postgres.PrivatePostgres` for Postgres and stop/start the
:class:`~loadtests.native.process.ManagedProcess` otherwise (a restarted slow API or service
starts again from its start-up knobs). Killing one Postgres backend needs no start again: the
postmaster survives and recovers on its own (:meth:`PrivatePostgres.kill_backend`). There are no
cgroups to lean on without root, so a CPU throttle is a duty cycle, like ``cpulimit``: a thread
lets the part run for ``cpus * period`` and stops it for the rest of each period. That caps wall
time, not CPU time, so ``cpus`` ≥ 1 means no limit for a single-threaded process such as one
uvicorn worker.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from loadtests.native.process import ManagedProcess

if TYPE_CHECKING:
    from loadtests.native.stack import NativeStack

PROCESS_NAMES = {"service": "demo service", "slow_api": "slow API"}
"""Fault part → the :attr:`ManagedProcess.name` the stack gives it."""
READY_PATHS = {"service": ("service", "/readyz"), "slow_api": ("slow_api", "/healthz")}
READY_TIMEOUT_S = 30.0
DUTY_PERIOD_S = 0.1


class DutyCycle:
    """A thread alternating SIGCONT for ``share * period`` and SIGSTOP for the rest.

    ``held()`` says when the part is paused on purpose: the cycle then never continues it.
    ``stop()`` ends the cycle and leaves the part running (unless held).
    """

    def __init__(
        self,
        send: Callable[[int], None],
        share: float,
        held: Callable[[], bool],
        lock: threading.Lock,
        period_s: float = DUTY_PERIOD_S,
    ) -> None:
        if not 0 < share < 1:
            raise ValueError(f"a duty cycle needs a share strictly between 0 and 1, got {share}")
        self.share = share
        self._send, self._held, self._lock = send, held, lock
        self._period_s = period_s
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="brink-cpu-throttle", daemon=True)

    def start(self) -> DutyCycle:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        self._thread.join()
        self._signal(signal.SIGCONT)

    def _run(self) -> None:
        run_s = self.share * self._period_s
        while not self._stopping.is_set():
            self._signal(signal.SIGCONT)
            if self._stopping.wait(run_s):
                return
            self._signal(signal.SIGSTOP)
            self._stopping.wait(self._period_s - run_s)

    def _signal(self, signum: int) -> None:
        with self._lock:
            if signum == signal.SIGCONT and self._held():
                return
            with contextlib.suppress(ProcessLookupError):
                self._send(signum)


class SignalledParts:
    """Pause, resume and CPU throttles by signals to a part's processes, undone by :meth:`close`.

    Subclasses say how to signal every process of a part (:meth:`_sender`): the processes a
    :class:`NativeStack` started here, or those a running ``brink up`` names by PID
    (:class:`~loadtests.attach.process_faults.PidProcessFaults`).
    """

    def __init__(self, duty_period_s: float = DUTY_PERIOD_S) -> None:
        self._duty_period_s = duty_period_s
        self._lock = threading.Lock()
        self._paused: set[str] = set()
        self._throttles: dict[str, DutyCycle] = {}

    def pause(self, part: str) -> None:
        send = self._sender(part)
        with self._lock:
            self._paused.add(part)
            send(signal.SIGSTOP)

    def resume(self, part: str) -> None:
        send = self._sender(part)
        with self._lock:
            self._paused.discard(part)
            send(signal.SIGCONT)

    def throttle_cpu(self, part: str, cpus: float | None) -> None:
        send = self._sender(part)
        old = self._throttles.pop(part, None)
        if old is not None:
            old.stop()
        if cpus is None or cpus >= 1:
            return
        held = lambda: part in self._paused  # noqa: E731
        self._throttles[part] = DutyCycle(send, cpus, held, self._lock, self._duty_period_s).start()

    def close(self) -> None:
        """Stop every throttle and continue every paused part: the stack as it was."""
        for part in list(self._throttles):
            self.throttle_cpu(part, None)
        for part in sorted(self._paused):
            self.resume(part)

    def _unpause(self, part: str) -> None:
        """A stopped process cannot be restarted cleanly: continue it first."""
        if part in self._paused:
            self.resume(part)

    def _sender(self, part: str) -> Callable[[int], None]:
        """How to signal every process of ``part`` (Postgres: the postmaster first, so that it
        forks nothing meanwhile); ValueError for an unknown part."""
        raise NotImplementedError


class NativeProcessFaults(SignalledParts):
    """:class:`~loadtests.faults.injector.ProcessFaults` on a running :class:`NativeStack`."""

    def __init__(
        self,
        stack: NativeStack,
        *,
        duty_period_s: float = DUTY_PERIOD_S,
        down_s: float = 0.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        """``down_s``: how long a killed part stays down before it starts again, like a
        supervisor's restart delay (0: at once)."""
        if down_s < 0:
            raise ValueError(f"down_s must be ≥ 0, got {down_s}")
        super().__init__(duty_period_s)
        self.stack = stack
        self._down_s, self._sleep = down_s, sleep

    def restart(self, part: str) -> None:
        self._unpause(part)
        if part == "postgres":
            self.stack.postgres.restart("fast")
        else:
            self._restart_process(part, signal.SIGTERM)

    def kill(self, part: str) -> None:
        self._unpause(part)
        if part == "postgres":
            self.stack.postgres.kill()
            self._stay_down()
            self.stack.postgres.start_again()
        else:
            self._restart_process(part, signal.SIGKILL)

    def kill_backend(self, part: str) -> float:
        """SIGKILL one Postgres backend; seconds until Postgres accepts connections again."""
        if part != "postgres":
            raise ValueError(f"{part}.kill_backend: only postgres has backends to kill")
        self._unpause(part)
        return self.stack.postgres.kill_backend()

    def _stay_down(self) -> None:
        if self._down_s > 0:
            self._sleep(self._down_s)

    def _restart_process(self, part: str, signum: int) -> None:
        process = self._process(part)
        process.signal(signum)
        process.stop()
        if signum == signal.SIGKILL:
            self._stay_down()
        process.start()
        base, path = READY_PATHS[part]
        process.wait_http_ready(self.stack.urls[base] + path, READY_TIMEOUT_S)

    def _sender(self, part: str) -> Callable[[int], None]:
        if part == "postgres":
            postgres = self.stack.postgres
            return lambda signum: _signal_each(postgres.processes(), signum)  # postmaster first
        process = self._process(part)
        return process.signal

    def _process(self, part: str) -> ManagedProcess:
        name = PROCESS_NAMES.get(part)
        if name is None:
            known = ", ".join(["postgres", *PROCESS_NAMES])
            raise ValueError(f"unknown part {part!r}: use {known}")
        try:
            return self.stack.process(name)
        except KeyError as exc:
            raise ValueError(exc.args[0]) from None


def _signal_each(pids: list[int], signum: int) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signum)
