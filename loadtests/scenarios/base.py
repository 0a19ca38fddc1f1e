"""The scenario framework: what a scenario gets (a context around a running stack) and returns.

A scenario is a short story told with real load: it runs one or more *phases* (each one Locust
run, optionally with a fault schedule applied while it runs), switches the service's presets and
knobs between them, and ends with a :class:`Verdict` — did the lesson show, with the numbers.
The runner (:mod:`loadtests.scenarios.runner`) starts the stack and builds the
:class:`~loadtests.scenarios.context.ScenarioContext` the scenario works through;
:mod:`loadtests.scenarios.report` writes what came back.

Keeping the verdict a pure function of the phases (each scenario module has one) lets the unit
tests check it on synthetic stages without a stack.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Protocol

from loadtests.ledger import LedgerVerdict
from loadtests.runner import RampConfig
from loadtests.samples import StageSample
from loadtests.scrape import Scrape
from loadtests.series import Second

if TYPE_CHECKING:
    from loadtests.attach.options import StackChoice
    from loadtests.faults.runner import AppliedFault
    from loadtests.scenarios.context import ScenarioContext

LOW_KNEE_SETTINGS: Mapping[str, str] = MappingProxyType(
    {
        "BRINK_DB__POOL_MAX": "2",
        "BRINK_DB__EXTRA_LATENCY_S": "0.07",
    }
)
"""A small pool and a DB hold on orders: the knee lands near 100 req/s (measured: 86 req/s
predicted with a 0.08 s hold), so on 2 shared cores the service tips long before the load
generator runs out of breath, and the DB pool is the bottleneck the reports can point at."""


class ScenarioError(RuntimeError):
    """The scenario could not run (a refused knob, a missing token): no verdict on the service."""


@dataclass(frozen=True)
class ScenarioOptions:
    """What the operator chose on the command line; scenarios read it, never argv."""

    quick: bool = False
    """Short stages for CI and tests: the contrast must still show, the figures are rougher."""
    step_s: float | None = None
    """Length of one stage; None: the scenario's own default (shorter with ``quick``)."""
    seed: int | None = None
    slo_s: float = 0.5
    workers: int = 0
    """Locust worker processes (0: one process)."""
    repeat: int = 1
    """How many times a scenario that repeats (metastable) runs its trial."""
    settings: Mapping[str, str] = field(default_factory=dict)
    """Extra ``BRINK_*`` settings for the stack; they override the scenario's own."""
    durable_postgres: bool = True
    """False (``--non-durable-postgres``): commits return before their WAL flush; a crash can
    lose acknowledged orders."""
    stack: StackChoice | None = None
    """Run on this running stack (``--stack``) instead of a private one: the settings are set
    live and put back after the run."""

    def step(self, normal_s: float, quick_s: float) -> float:
        """The stage length: ``--step-s`` if given, else the scenario's default for the mode."""
        if self.step_s is not None:
            return self.step_s
        return quick_s if self.quick else normal_s


@dataclass(frozen=True)
class StackNeeds:
    """What a scenario needs from the stack the runner starts."""

    pg_exporter: bool = False
    """Start brink's Postgres exporter (lock waits) too."""
    settings: Mapping[str, str] = field(default_factory=dict)
    """``BRINK_*`` settings that make the lesson show (pool size, DB hold...)."""


@dataclass(frozen=True)
class FaultWindow:
    """One fault as applied during a phase: what, from when to when (wall clock, seconds)."""

    label: str
    start: float
    end: float | None
    """None: still applied when the phase ended (or never lifted)."""


@dataclass(frozen=True)
class Phase:
    """One Locust run of a scenario and everything measured during it."""

    name: str
    stages: list[StageSample]
    seconds: dict[int, Second]
    """Client figures per wall-clock second of arrival (see :mod:`loadtests.series`)."""
    service_scrapes: list[Scrape]
    faults: list[AppliedFault]
    """Every apply and undo the fault runner carried out (``FaultRunner.applied``)."""
    started_at: float
    config: RampConfig
    ended_at: float = 0.0
    aborted: str | None = None
    timeline: list[dict[str, Any]] = field(default_factory=list)
    """The generator's stages as run: ``{"index", "name", "rps", "start"}``."""
    labels: Mapping[str, str] = field(default_factory=dict)
    """Free-form tags for reports, e.g. ``{"preset": "fragile"}``."""

    @property
    def fault_windows(self) -> list[FaultWindow]:
        """The applied faults as time windows, for shading plots."""
        return fault_windows(self.faults)


def fault_windows(events: Sequence[AppliedFault]) -> list[FaultWindow]:
    """Pair each successful ``apply`` with the next ``undo`` of the same action."""
    windows: list[FaultWindow] = []
    open_: dict[str, int] = {}
    for event in sorted(events, key=lambda e: e.wall_time):
        if not event.ok:
            continue
        if event.kind == "apply":
            open_[event.action] = len(windows)
            windows.append(FaultWindow(event.action, event.wall_time, None))
        elif event.action in open_:
            index = open_.pop(event.action)
            windows[index] = replace(windows[index], end=event.wall_time)
    return windows


@dataclass(frozen=True)
class Verdict:
    """Did the lesson show? ``figures`` are the named measurements behind it, in base units."""

    passed: bool
    label: str
    headline: str
    figures: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class ScenarioResult:
    name: str
    description: str
    verdict: Verdict
    phases: list[Phase]
    notes: list[str] = field(default_factory=list)
    ledger: LedgerVerdict | None = None
    """Every order the phases sent, against the database; None: not checked."""


class Scenario(Protocol):
    """What a scenario module's ``SCENARIO`` is."""

    @property
    def name(self) -> str: ...

    @property
    def description(self) -> str: ...

    @property
    def needs(self) -> StackNeeds: ...

    def run(self, ctx: ScenarioContext) -> ScenarioResult: ...


# --- helpers for verdicts: pure, shared by the scenario modules ---------------------------------


def ratio(numerator: float | None, denominator: float | None) -> float:
    """``numerator / denominator``, NaN when either is missing or the denominator is 0."""
    if numerator is None or denominator is None or denominator == 0:
        return math.nan
    return numerator / denominator


def healthy(stage: StageSample, slo_s: float, min_goodput_ratio: float = 0.95) -> bool:
    """Served well: goodput ≥ ``min_goodput_ratio`` of the offered load and p95 within the SLO."""
    fast = stage.p95_s is not None and stage.p95_s <= slo_s
    return fast and stage.goodput_ratio >= min_goodput_ratio


def combined(stages: Sequence[StageSample]) -> StageSample | None:
    """Several stages of one flat phase as one, rates and latencies weighted by window.

    Percentiles cannot be merged exactly from percentiles; the window-weighted mean of the
    stages' p95 is what a flat phase needs (its stages are alike) and is labelled as such.
    """
    if not stages:
        return None
    total = math.fsum(s.window_s for s in stages) or 1.0

    def mean(values: Sequence[tuple[float, float | None]]) -> float | None:
        known = [(w, v) for w, v in values if v is not None]
        weight = math.fsum(w for w, _ in known)
        return math.fsum(w * v for w, v in known) / weight if weight else None

    errors: dict[str, int] = {}
    for stage in stages:
        for kind, count in stage.errors.items():
            errors[kind] = errors.get(kind, 0) + count
    first = stages[0]
    return StageSample(
        index=first.index,
        name=first.name if len(stages) == 1 else f"{first.name} (+{len(stages) - 1})",
        target_rps=math.fsum(s.target_rps * s.window_s for s in stages) / total,
        window_s=total,
        offered_rps=math.fsum(s.offered_rps * s.window_s for s in stages) / total,
        achieved_rps=math.fsum(s.achieved_rps * s.window_s for s in stages) / total,
        goodput_rps=math.fsum(s.goodput_rps * s.window_s for s in stages) / total,
        dropped_rps=math.fsum(s.dropped_rps * s.window_s for s in stages) / total,
        p50_s=mean([(s.window_s, s.p50_s) for s in stages]),
        p95_s=mean([(s.window_s, s.p95_s) for s in stages]),
        p99_s=mean([(s.window_s, s.p99_s) for s in stages]),
        errors=errors,
        requests=sum(s.requests for s in stages),
    )
