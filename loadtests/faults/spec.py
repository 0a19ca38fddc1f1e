"""Fault schedules as data: what to change, when, and for how long. Pure: no I/O, no clock.

One grammar for every fault, so a scenario, a CLI flag and a report all speak the same text:

* a knob: ``slow_api.extra_latency_s=0.2``, ``service.db_latency_s=0.05``,
  ``resilience.preset=resilient``, ``resilience.retry.policy=naive``;
* a process fault: ``postgres.pause``, ``postgres.restart``, ``postgres.kill``,
  ``postgres.kill_backend`` (SIGKILL one backend: Postgres resets every connection and recovers),
  ``service.pause``, ``slow_api.pause``, ``service.cpu=0.5`` (throttle to half a core;
  ``service.cpu=none`` lifts it).

Knob names and values are checked against the very pydantic models the servers validate with
(:class:`~demo_service.slow_api.KnobsUpdate`, :class:`~demo_service.faults.FaultsUpdate`,
:class:`~demo_service.resilience.presets.ResilienceOverrides`), so a schedule that parses here is
one the servers accept, and a typo fails before the run starts rather than at second 60 of it.

A step: ``at 60s set slow_api.extra_latency_s=0.2 for 10s``, ``at 30s postgres.restart``
(``set`` is optional; durations take ``ms``, ``s`` or ``m``, bare numbers are seconds).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal, get_args

from pydantic import BaseModel, TypeAdapter, ValidationError

from demo_service.faults import FaultsUpdate
from demo_service.resilience.presets import PresetName, ResilienceOverrides
from demo_service.slow_api import KnobsUpdate

EventKind = Literal["apply", "undo"]

KNOB_MODELS: dict[str, type[BaseModel]] = {"slow_api": KnobsUpdate, "service": FaultsUpdate}
"""Flat knob targets and the update model their server validates with."""
PROCESS_PARTS = ("postgres", "service", "slow_api")
"""The parts of the stack a process fault can hit (native processes or Compose services)."""
PROCESS_OPS = ("pause", "restart", "kill", "kill_backend", "cpu")
INSTANT_OPS = ("restart", "kill", "kill_backend")
"""Process faults that happen once and have nothing to undo."""
ONE_PART_OPS = {"kill_backend": "postgres"}
"""Process faults only one part has: only Postgres has backends."""
MAX_CPUS = 64.0
_OPS = ", ".join(PROCESS_OPS)


@dataclass(frozen=True)
class FaultAction:
    """One change: a knob (``slow_api.extra_latency_s=0.2``, ``service.db_latency_s=0.05``,
    ``resilience.preset=resilient``, ``resilience.retry.policy=naive``) or a process fault
    (``postgres.pause``, ``postgres.restart``, ``postgres.kill``, ``postgres.kill_backend``,
    ``service.pause``, ``slow_api.pause``, ``service.cpu=0.5`` — throttle to half a core)."""

    target: str
    """``slow_api`` | ``service`` | ``resilience`` for knobs; ``postgres`` | ``service`` |
    ``slow_api`` for process faults (``name`` tells the two ``service`` kinds apart)."""
    name: str
    """The knob (``retry.policy`` for a resilience group's knob) or the process operation."""
    value: Any = None

    @property
    def is_process(self) -> bool:
        return self.target in PROCESS_PARTS and self.name in PROCESS_OPS

    @property
    def instant(self) -> bool:
        """Happens once (restart, kill, kill_backend): nothing to undo, so no ``for``."""
        return self.is_process and self.name in INSTANT_OPS

    @property
    def key(self) -> tuple[str, str]:
        """What the action changes; two timed steps on one key may not overlap.

        Every resilience action shares one key: a preset switch drops the overrides, so undoing
        one knob while another step changed the preset would restore the wrong state.
        """
        if self.target == "resilience":
            return ("resilience", "*")
        return (self.target, self.name)

    def __str__(self) -> str:
        if self.is_process and self.name != "cpu":
            return f"{self.target}.{self.name}"
        return f"{self.target}.{self.name}={_show(self.value)}"


@dataclass(frozen=True)
class FaultStep:
    """One action at ``at_s`` seconds after the schedule starts, undone after ``for_s``."""

    at_s: float
    action: FaultAction
    for_s: float | None = None
    """None: the change stays (until the runner stops), or is instantaneous (restart, kill,
    kill_backend)."""

    def __post_init__(self) -> None:
        if not (math.isfinite(self.at_s) and self.at_s >= 0):
            raise ValueError(f"{self.action}: the start must be ≥ 0 s, got {self.at_s!r}")
        if self.for_s is not None:
            if self.action.instant:
                raise ValueError(
                    f"{self.action} is instantaneous: it cannot last 'for' {_show(self.for_s)} s"
                )
            if not (math.isfinite(self.for_s) and self.for_s > 0):
                raise ValueError(f"{self.action}: 'for' must be > 0 s, got {self.for_s!r}")

    @property
    def until_s(self) -> float | None:
        return None if self.for_s is None else self.at_s + self.for_s

    def __str__(self) -> str:
        verb = "" if self.action.is_process else "set "
        text = f"at {_show(self.at_s)}s {verb}{self.action}"
        return text if self.for_s is None else f"{text} for {_show(self.for_s)}s"


@dataclass(frozen=True)
class FaultSchedule:
    """Steps to play against an injector; :meth:`events` is the timeline a runner follows."""

    steps: tuple[FaultStep, ...]

    def __post_init__(self) -> None:
        for i, first in enumerate(self.steps):
            for second in self.steps[i + 1 :]:
                clash = _overlap(first, second) or _overlap(second, first)
                if clash:
                    raise ValueError(f"steps overlap on {first.action.key[0]}: {clash}")

    @classmethod
    def parse(cls, texts: str | Iterable[str]) -> FaultSchedule:
        """Steps from lines (or one string of lines / ``;``-separated steps); blanks and ``#``
        comments are skipped."""
        if isinstance(texts, str):
            texts = re.split(r"[;\n]", texts)
        lines = (line.split("#", 1)[0].strip() for line in texts)
        return cls(tuple(parse_step(line) for line in lines if line))

    def events(self) -> list[tuple[float, EventKind, FaultAction]]:
        """``(seconds, "apply" | "undo", action)`` sorted by time; at one instant undos come
        first (a knob handed from one step to the next), then the steps' own order."""
        timeline: list[tuple[float, int, int, EventKind, FaultAction]] = []
        for index, step in enumerate(self.steps):
            timeline.append((step.at_s, 1, index, "apply", step.action))
            if step.until_s is not None:
                timeline.append((step.until_s, 0, index, "undo", step.action))
        timeline.sort(key=lambda event: event[:3])
        return [(at, kind, action) for at, _, _, kind, action in timeline]

    @property
    def duration_s(self) -> float:
        """When the last event happens (0 for an empty schedule)."""
        return max((at for at, _, _ in self.events()), default=0.0)

    def __str__(self) -> str:
        return "; ".join(str(step) for step in self.steps)


def _overlap(first: FaultStep, second: FaultStep) -> str | None:
    """Why ``second`` lands inside ``first``'s window on the same key, if it does."""
    if first.action.instant or second.action.instant or first.action.key != second.action.key:
        return None
    end = first.until_s
    if first.at_s == second.at_s or (end is not None and first.at_s <= second.at_s < end):
        return f"'{second}' starts while '{first}' is in force"
    return None


_DURATION = re.compile(r"(?P<number>\d+(?:\.\d*)?|\.\d+)\s*(?P<unit>ms|s|m)?")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, None: 1.0}
_STEP = re.compile(
    r"at\s+(?P<at>\S+)\s+(?:set\s+)?(?P<action>\S+)(?:\s+for\s+(?P<for>\S+))?", re.IGNORECASE
)


def parse_duration(text: str) -> float:
    """``"60s"``, ``"1.5s"``, ``"500ms"``, ``"2m"`` or ``"60"`` (seconds) → seconds."""
    match = _DURATION.fullmatch(text.strip())
    if match is None:
        raise ValueError(f"{text!r} is not a duration: use e.g. 60s, 1.5s, 500ms or 2m")
    return float(match["number"]) * _UNITS[match["unit"]]


def parse_step(text: str) -> FaultStep:
    """``"at 60s set slow_api.extra_latency_s=0.2 for 10s"``, ``"at 30s postgres.restart"``,
    ``"at 5s set resilience.preset=fragile"``; ValueError with the reason otherwise."""
    match = _STEP.fullmatch(text.strip())
    if match is None:
        raise ValueError(
            f"{text!r}: a step reads 'at <time> [set] <fault> [for <duration>]', "
            "e.g. 'at 60s set slow_api.extra_latency_s=0.2 for 10s'"
        )
    try:
        for_s = None if match["for"] is None else parse_duration(match["for"])
        return FaultStep(parse_duration(match["at"]), parse_action(match["action"]), for_s)
    except ValueError as exc:
        raise ValueError(f"{text!r}: {exc}") from None


def parse_action(text: str) -> FaultAction:
    """``target.name[=value]`` → a validated :class:`FaultAction`; ValueError with the reason."""
    path, has_value, raw = text.strip().partition("=")
    target, _, name = path.partition(".")
    if not target or not name:
        raise ValueError(
            f"{text!r}: a fault reads 'target.knob=value' or 'part.operation', e.g. "
            "slow_api.extra_latency_s=0.2 or postgres.pause"
        )
    value = raw.strip() if has_value else None
    if target in PROCESS_PARTS and name in PROCESS_OPS:
        return _process_action(target, name, value)
    if target in PROCESS_PARTS and target not in KNOB_MODELS:
        raise ValueError(f"{text!r}: {target} has no operation {name!r}; use {_OPS}")
    if target not in (*KNOB_MODELS, "resilience"):
        raise ValueError(
            f"{text!r}: unknown target {target!r}; knobs live under "
            f"{', '.join([*KNOB_MODELS, 'resilience'])}, process faults under "
            f"{', '.join(PROCESS_PARTS)} ({', '.join(PROCESS_OPS)})"
        )
    if target == "resilience":
        return FaultAction(target, name, _resilience_value(name, value))
    return FaultAction(target, name, _knob_value(KNOB_MODELS[target], target, name, value))


def _process_action(part: str, operation: str, value: str | None) -> FaultAction:
    owner = ONE_PART_OPS.get(operation, part)
    if owner != part:
        raise ValueError(f"{part}.{operation}: a fault of {owner} only; use {owner}.{operation}")
    if operation != "cpu":
        if value is not None:
            raise ValueError(f"{part}.{operation} takes no value")
        return FaultAction(part, operation)
    if value is None:
        raise ValueError(f"{part}.cpu needs a value: cores, e.g. {part}.cpu=0.5, or none")
    if value.lower() == "none":
        return FaultAction(part, "cpu", None)
    try:
        cpus = float(value)
    except ValueError:
        raise ValueError(f"{part}.cpu={value}: cores must be a number or none") from None
    if not 0 < cpus <= MAX_CPUS:
        raise ValueError(f"{part}.cpu={value}: cores must be > 0 and ≤ {MAX_CPUS:g}")
    return FaultAction(part, "cpu", cpus)


def _knob_value(model: type[BaseModel], target: str, name: str, raw: str | None) -> Any:
    if name not in model.model_fields:
        known = ", ".join(model.model_fields)
        raise ValueError(
            f"{target}.{name}: unknown knob; {target} has {known} (process faults: {_OPS})"
        )
    raw = _required(target, name, raw)
    try:
        return getattr(model.model_validate({name: raw}), name)
    except ValidationError as exc:
        raise ValueError(f"{target}.{name}={raw}: {_reason(exc)}") from None


def _resilience_value(name: str, raw: str | None) -> Any:
    if name == "preset":
        raw = _required("resilience", name, raw)
        try:
            return TypeAdapter(PresetName).validate_python(raw)
        except ValidationError:
            presets = ", ".join(get_args(PresetName))
            raise ValueError(f"resilience.preset={raw}: not a preset; use {presets}") from None
    group, _, knob = name.partition(".")
    groups = ResilienceOverrides.model_fields
    if group not in groups or not knob:
        raise ValueError(
            f"resilience.{name}: use resilience.preset or resilience.<group>.<knob> with a group "
            f"of {', '.join(groups)}"
        )
    group_model = groups[group].annotation
    assert isinstance(group_model, type)
    assert issubclass(group_model, BaseModel)
    if knob not in group_model.model_fields:
        known = ", ".join(group_model.model_fields)
        raise ValueError(f"resilience.{name}: unknown knob; {group} has {known}")
    raw = _required("resilience", name, raw)
    try:
        parsed = ResilienceOverrides.model_validate({group: {knob: raw}})
    except ValidationError as exc:
        raise ValueError(f"resilience.{name}={raw}: {_reason(exc)}") from None
    return getattr(getattr(parsed, group), knob)


def _required(target: str, name: str, raw: str | None) -> str:
    if raw is None:
        raise ValueError(f"{target}.{name}: a knob needs a value: {target}.{name}=<value>")
    return raw


def _reason(exc: ValidationError) -> str:
    return "; ".join(error["msg"][:1].lower() + error["msg"][1:] for error in exc.errors())


def _show(value: object) -> str:
    if value is None:
        return "none"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return f"{value:.12g}"
    return str(value)
