"""Injectors: what turns a :class:`~loadtests.faults.spec.FaultAction` into a real change.

Every injector answers ``apply``, ``undo`` (back to what was in force before that apply) and
``reset`` (everything back to start-up), so a runner need not know whether a step turns a knob
over HTTP or stops a process. Knobs go through the token-protected admin/control APIs
(:class:`KnobInjector`); process faults go through one :class:`ProcessFaults` interface with a
native implementation (signals on the processes ``brink up`` started, ``native.py``) and a Docker
one (the Docker SDK on a Compose project's containers, ``docker_faults.py``). ``apply`` returns
how long the part took to recover when the fault measures it (``postgres.kill_backend``: seconds
until Postgres accepts connections again), else None.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import TracebackType
from typing import Any, Protocol, Self

import httpx2

from loadtests.faults.docker_faults import DockerProcessFaults
from loadtests.faults.native import NativeProcessFaults
from loadtests.faults.spec import FaultAction

__all__ = [
    "KNOB_TARGETS",
    "CompositeInjector",
    "DockerProcessFaults",
    "FaultError",
    "Injector",
    "KnobInjector",
    "NativeProcessFaults",
    "ProcessFaults",
    "ProcessInjector",
]

HTTP_TIMEOUT_S = 5.0
"""Per admin call: short, since a paused server must fail the step, not stall the schedule."""


class FaultError(RuntimeError):
    """A fault could not be applied or undone; the message says which and why."""


class Injector(Protocol):
    def apply(self, action: FaultAction) -> float | None:
        """Carry ``action`` out; the seconds the part took to recover, for faults that measure
        it (``postgres.kill_backend``), else None."""

    def undo(self, action: FaultAction) -> None:
        """Restore the value in force before ``apply(action)`` (resume, lift a throttle)."""

    def reset(self) -> None:
        """Everything back to its start-up state."""


class ProcessFaults(Protocol):
    """Process-level faults on the parts ``postgres``, ``service`` and ``slow_api``."""

    def pause(self, part: str) -> None: ...

    def resume(self, part: str) -> None: ...

    def restart(self, part: str) -> None: ...

    def kill(self, part: str) -> None:
        """A hard kill (SIGKILL), then start it again."""

    def kill_backend(self, part: str) -> float:
        """SIGKILL one backend serving a client (Postgres only): the postmaster ends every other
        connection and recovers. Returns the seconds until it accepts connections again."""

    def throttle_cpu(self, part: str, cpus: float | None) -> None:
        """Cap the part at ``cpus`` cores; None: back to no extra limit."""


class KnobInjector:
    """Knobs over HTTP: the service's ``/admin/faults`` and ``/admin/resilience``, the slow API's
    ``/control``. Reads the value in force before each change, so ``undo`` restores it."""

    def __init__(
        self,
        service_url: str,
        slow_api_url: str,
        token: str,
        *,
        transport: httpx2.BaseTransport | None = None,
    ) -> None:
        self._urls = {"service": service_url.rstrip("/"), "slow_api": slow_api_url.rstrip("/")}
        self._client = httpx2.Client(
            headers={"Authorization": f"Bearer {token}"},
            timeout=HTTP_TIMEOUT_S,
            transport=transport,
        )
        self._before: dict[FaultAction, dict[str, Any]] = {}

    def apply(self, action: FaultAction) -> None:
        path = _PATHS.get(action.target)
        if path is None or action.is_process:
            raise FaultError(f"{action}: not a knob")
        base, route = path
        now = settable(action.target, self._call("GET", base, route, action))
        if action.target == "resilience":
            before = now
            self._call("PUT", base, route, action, _resilience_body(action))
        else:
            before = {action.name: now[action.name]}
            self._call("PUT", base, route, action, {action.name: action.value})
        self._before[action] = before

    def undo(self, action: FaultAction) -> None:
        before = self._before.pop(action, None)
        if before is None:
            raise FaultError(f"{action}: cannot undo what was not applied")
        base, route = _PATHS[action.target]
        self._call("PUT", base, route, action, before)

    def reset(self) -> None:
        self._before.clear()
        for base, route in _PATHS.values():
            self._call("POST", base, route + "/reset", None)

    def current(self, target: str) -> dict[str, Any]:
        """Every knob of ``target`` (a key of :data:`KNOB_TARGETS`) now, as a body that sets
        them back exactly (:func:`settable`)."""
        base, route = _PATHS[target]
        return settable(target, self._call("GET", base, route, None))

    def write(self, target: str, body: Mapping[str, Any]) -> dict[str, Any]:
        """PUT ``body`` to ``target``'s knobs; what the server answers (every knob)."""
        base, route = _PATHS[target]
        return self._call("PUT", base, route, None, body)

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _call(
        self,
        method: str,
        base: str,
        route: str,
        action: FaultAction | None,
        body: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        url = self._urls[base] + route
        what = f"{action}: " if action is not None else ""
        try:
            response = self._client.request(method, url, json=body)
        except httpx2.HTTPError as exc:
            raise FaultError(f"{what}{method} {url} failed: {exc!r}") from exc
        if response.status_code != 200:
            raise FaultError(
                f"{what}{method} {url} answered {response.status_code}: {response.text[:300]}"
            )
        answer: dict[str, Any] = response.json()
        return answer


_PATHS = {
    "slow_api": ("slow_api", "/control"),
    "service": ("service", "/admin/faults"),
    "resilience": ("service", "/admin/resilience"),
}
"""Knob target → (which server, route)."""
KNOB_TARGETS = tuple(_PATHS)


def settable(target: str, answer: Mapping[str, Any]) -> dict[str, Any]:
    """A GET's answer as the PUT body that restores it. ``/admin/resilience`` answers the
    preset, the overrides and the config in force: a PUT of the preset drops every override,
    then the overrides given apply, which is exactly the state read."""
    if target == "resilience":
        return {"preset": answer["preset"], **answer["overrides"]}
    return dict(answer)


def _resilience_body(action: FaultAction) -> dict[str, Any]:
    if action.name == "preset":
        return {"preset": action.value}
    group, _, knob = action.name.partition(".")
    return {group: {knob: action.value}}


class ProcessInjector:
    """Process actions on a :class:`ProcessFaults`; remembers pauses and throttles to undo."""

    def __init__(self, faults: ProcessFaults) -> None:
        self.faults = faults
        self._paused: set[str] = set()
        self._cpus: dict[str, float | None] = {}
        self._before_cpu: dict[FaultAction, float | None] = {}

    def apply(self, action: FaultAction) -> float | None:
        part = action.target
        if not action.is_process:
            raise FaultError(f"{action}: not a process fault")
        if action.name == "kill_backend":
            return self.faults.kill_backend(part)
        if action.name == "pause":
            self.faults.pause(part)
            self._paused.add(part)
        elif action.name == "restart":
            self.faults.restart(part)
        elif action.name == "kill":
            self.faults.kill(part)
        else:
            before = self._cpus.get(part)
            self.faults.throttle_cpu(part, action.value)
            self._cpus[part] = action.value
            self._before_cpu[action] = before
        return None

    def undo(self, action: FaultAction) -> None:
        part = action.target
        if action.name == "pause":
            self.faults.resume(part)
            self._paused.discard(part)
        elif action.name == "cpu":
            before = self._before_cpu.pop(action, None)
            self.faults.throttle_cpu(part, before)
            self._cpus[part] = before
        # restart, kill and kill_backend are instantaneous: nothing to undo

    def reset(self) -> None:
        for part in sorted(self._paused):
            self.faults.resume(part)
        for part, cpus in sorted(self._cpus.items()):
            if cpus is not None:
                self.faults.throttle_cpu(part, None)
        self._paused.clear()
        self._cpus.clear()
        self._before_cpu.clear()


class CompositeInjector:
    """Knobs and process faults behind one :class:`Injector`: each action goes to its kind."""

    def __init__(self, knobs: Injector | None, processes: ProcessFaults | None) -> None:
        self.knobs = knobs
        self.processes = None if processes is None else ProcessInjector(processes)
        self._closers = [
            close for part in (knobs, processes) if callable(close := getattr(part, "close", None))
        ]

    def apply(self, action: FaultAction) -> float | None:
        return self._for(action).apply(action)

    def undo(self, action: FaultAction) -> None:
        self._for(action).undo(action)

    def reset(self) -> None:
        """Processes first (a paused server cannot take a knob reset), then knobs."""
        for injector in (self.processes, self.knobs):
            if injector is not None:
                injector.reset()

    def close(self) -> None:
        """Close the parts that hold resources (the HTTP client, native throttle threads)."""
        for close in self._closers:
            close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _for(self, action: FaultAction) -> Injector:
        injector: Injector | None = self.processes if action.is_process else self.knobs
        if injector is None:
            kind = "process faults" if action.is_process else "knobs"
            raise FaultError(f"{action}: this run has no injector for {kind}")
        return injector
