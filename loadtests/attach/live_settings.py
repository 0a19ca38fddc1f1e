"""Start-up settings as live knobs, and a running stack's knobs put back as they were found.

A private stack gets a run's ``BRINK_*`` settings at start-up. A running stack cannot be
restarted under a workshop's dashboards, so there each setting becomes the admin knob that
changes the same thing live (:data:`LIVE_KNOBS`; every ``BRINK_RESILIENCE__*`` setting is the
knob of the same name, :data:`LIVE_PREFIXES`). A setting read only at start-up has no such knob,
and a run that needs one is refused before anything changes (:class:`NoLiveKnob`).

:class:`LiveSettings` reads every knob first (the service's faults and resilience, the slow
API's ``/control``), then sets the run's; ``reset()`` brings the stack back to "as found, plus
what the run needs" (a scenario's reset between phases must not undo its own needs), and
``restore()`` puts back exactly what was found.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from loadtests.attach.running_stack import AttachError
from loadtests.faults.injector import KNOB_TARGETS, FaultError, KnobInjector

Say = Callable[[str], None]
Changes = dict[str, dict[str, Any]]
"""Knob target (``service``, ``resilience``, ``slow_api``) → the PUT body for it."""


@dataclass(frozen=True)
class LiveKnob:
    """The admin knob that changes live what a start-up setting sets."""

    target: str
    """A :class:`~loadtests.faults.injector.KnobInjector` target."""
    knob: str
    """The knob's name; ``group.knob`` for a resilience mechanism's knob."""


LIVE_KNOBS: Mapping[str, LiveKnob] = MappingProxyType(
    {
        "BRINK_DB__POOL_MAX": LiveKnob("service", "pool_size"),
        "BRINK_DB__POOL_MIN": LiveKnob("service", "pool_min"),
        "BRINK_DB__EXTRA_LATENCY_S": LiveKnob("service", "db_latency_s"),
        "BRINK_DB__ACQUIRE_TIMEOUT_S": LiveKnob("resilience", "deadlines.db_acquire_s"),
        "BRINK_EXTERNAL__MAX_CONNECTIONS": LiveKnob("service", "external_pool_size"),
        "BRINK_EXTERNAL__MAX_KEEPALIVE": LiveKnob("service", "external_keepalive"),
        "BRINK_SLOW_API__BASE_LATENCY_S": LiveKnob("slow_api", "base_latency_s"),
        "BRINK_SLOW_API__JITTER_SIGMA": LiveKnob("slow_api", "jitter_sigma"),
        "BRINK_SLOW_API__CAPACITY": LiveKnob("slow_api", "capacity"),
        "BRINK_SLOW_API__ERROR_RATE": LiveKnob("slow_api", "error_rate"),
        "BRINK_SLOW_API__EXTRA_LATENCY_S": LiveKnob("slow_api", "extra_latency_s"),
        "BRINK_SLOW_API__OUTAGE": LiveKnob("slow_api", "outage"),
        "BRINK_RESILIENCE__PRESET": LiveKnob("resilience", "preset"),
    }
)
"""Start-up setting → its live knob. The pool and client knobs build a new asyncpg pool or
external API client with those sizes and swap it in (what is under way finishes on the old
one). Any setting not here (and not under a prefix of :data:`LIVE_PREFIXES`) is read once at
start-up: ``BRINK_CPU__ITERATIONS``, ``BRINK_EXTERNAL__URL``, the client's and the pool's
timeouts (``BRINK_EXTERNAL__READ_TIMEOUT_S``, ``BRINK_DB__CONNECT_TIMEOUT_S``), listeners..."""
LIVE_PREFIXES: Mapping[str, str] = MappingProxyType({"BRINK_RESILIENCE__": "resilience"})
"""``BRINK_RESILIENCE__<GROUP>__<KNOB>`` is the knob ``group.knob`` of ``/admin/resilience``
(the service validates the name and the value, and refuses before anything changes)."""


class NoLiveKnob(AttachError):
    """A setting the run needs can only be set at start-up; the message names it."""


def live_knob(setting: str) -> LiveKnob | None:
    """The live knob for ``setting`` (``BRINK_DB__POOL_MAX``), or None when it has none."""
    if setting in LIVE_KNOBS:
        return LIVE_KNOBS[setting]
    for prefix, target in LIVE_PREFIXES.items():
        rest = setting.removeprefix(prefix)
        if rest != setting and rest.count("__") == 1:
            return LiveKnob(target, rest.replace("__", ".").lower())
    return None


def live_changes(settings: Mapping[str, str]) -> Changes:
    """The knob changes that make ``settings`` true on a running stack, one body per target.

    Raises :class:`NoLiveKnob` naming every setting that has no live knob.
    """
    missing = [name for name in settings if live_knob(name) is None]
    if missing:
        flags = " ".join(f"--set {name.removeprefix('BRINK_')}={settings[name]}"
                         for name in missing)  # fmt: skip
        raise NoLiveKnob(
            f"{', '.join(missing)}: read only at start-up, no live knob can set "
            f"{'it' if len(missing) == 1 else 'them'} on a running stack. Run on a private "
            f"stack (drop --stack), or restart the stack with it (brink up {flags})"
        )
    changes: Changes = {}
    for name, text in settings.items():
        knob = live_knob(name)
        assert knob is not None
        body = changes.setdefault(knob.target, {})
        group, dot, leaf = knob.knob.partition(".")
        if dot:
            body.setdefault(group, {})[leaf] = _value(text)
        else:
            body[knob.knob] = _value(text)
    return changes


def _value(text: str) -> Any:
    """``"2"`` → 2, ``"0.07"`` → 0.07, ``"true"`` → True; anything else stays text."""
    try:
        value = json.loads(text)
    except ValueError:
        return text
    return value if isinstance(value, bool | int | float) else text


class LiveSettings:
    """A running stack's knobs: as found (``snapshot``), as the run needs them (``apply``)."""

    def __init__(self, knobs: KnobInjector, needs: Changes) -> None:
        self.knobs = knobs
        self.needs = needs
        self.found: Changes = {}

    def snapshot(self) -> Changes:
        """Read every knob of every target: what ``restore()`` puts back."""
        self.found = {target: self.knobs.current(target) for target in KNOB_TARGETS}
        return self.found

    def apply(self) -> None:
        """Set what the run needs (nothing else changes)."""
        for target, body in self.needs.items():
            self.knobs.write(target, body)

    def reset(self) -> None:
        """Back to as found, plus what the run needs: a reset that keeps the lesson's stack.
        Raises :class:`~loadtests.faults.injector.FaultError` when a target refuses."""
        problems = self._put(self.found)
        if problems:
            raise FaultError("; ".join(problems))
        self.apply()

    def restore(self) -> list[str]:
        """Put back exactly what was found, then read it again; the problems, if any."""
        problems = self._put(self.found)
        for target, before in self.found.items():
            try:
                now = self.knobs.current(target)
            except FaultError as exc:
                problems.append(str(exc))
                continue
            if now != before:
                problems.append(f"{target}: is {now}, was {before}")
        return problems

    def _put(self, bodies: Changes) -> list[str]:
        """PUT each body; a failing target does not stop the others."""
        problems = []
        for target, body in bodies.items():
            try:
                self.knobs.write(target, body)
            except FaultError as exc:
                problems.append(str(exc))
        return problems


@contextmanager
def needs_applied(live: LiveSettings, say: Say) -> Iterator[LiveSettings]:
    """Apply the needs on a stack already snapshotted; on the way out (an error, a stop
    signal) restore what was found."""
    try:
        if live.needs:
            say("setting on the running stack: " + _describe(live.needs))
        try:
            live.apply()
        except FaultError as exc:
            raise AttachError(f"the stack refused a setting: {exc}") from None
        yield live
    finally:
        problems = live.restore()
        if problems:
            say("COULD NOT PUT THE STACK BACK as found: " + "; ".join(problems))
        else:
            say("stack settings put back as found (faults, resilience, slow API)")


def _describe(changes: Changes) -> str:
    return "; ".join(f"{target} {json.dumps(body)}" for target, body in changes.items())
