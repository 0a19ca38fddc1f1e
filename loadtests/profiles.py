"""Named load profiles as data: stage tables built from a few parameters.

A profile is a tuple of flat :class:`Stage` s, each a name, a duration and a target arrival rate
(open model: requests *started* per second, whatever the service does with them). Builders turn
:class:`ProfileParams` (the service's average and peak rates, the step length, the caps) into
the table the name promises; :func:`build_profile` looks one up in :data:`PROFILES` by name.
Every stage's name carries its rate, so a report row reads on its own.
Model: grafana/quickpizza ``k6/foundations/lib/load-options.js``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import NamedTuple

DEFAULT_AVERAGE_RPS = 50.0
DEFAULT_PEAK_RPS = 100.0
"""The rates a run takes when nothing else sets them: Locust's form, ``brink profiles``, a
:class:`~loadtests.runner.RampConfig` (``brink ramp`` derives its own from the probe)."""
DEFAULT_RPS_CAP = 2000.0
"""Hard rate cap: no stage asks for more (dispatchers cost ~1 core at this rate)."""
DEFAULT_DURATION_CAP_S = 1800.0
"""Hard duration cap: no profile's stages run longer than 30 minutes."""


def _positive(name: str, value: float) -> None:
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")


def _non_negative(name: str, value: float) -> None:
    if not (math.isfinite(value) and value >= 0):
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")


def _fmt(value: float) -> str:
    """``150.0`` -> ``"150"``, ``237.5`` -> ``"237.5"``."""
    return f"{value:.1f}".removesuffix(".0")


@dataclass(frozen=True)
class Stage:
    """One flat step: ``rps`` arrivals per second for ``duration_s`` seconds."""

    name: str
    duration_s: float
    rps: float

    def __post_init__(self) -> None:
        if not self.name:
            raise ValueError("stage name must not be empty")
        _positive(f"stage {self.name!r} duration_s", self.duration_s)
        _non_negative(f"stage {self.name!r} rps", self.rps)


@dataclass(frozen=True)
class Profile:
    """A named stage table, checked against its rate and duration caps when built."""

    name: str
    description: str
    stages: tuple[Stage, ...]
    rps_cap: float = DEFAULT_RPS_CAP
    duration_cap_s: float = DEFAULT_DURATION_CAP_S

    def __post_init__(self) -> None:
        _positive("rps_cap", self.rps_cap)
        _positive("duration_cap_s", self.duration_cap_s)
        if not self.stages:
            raise ValueError(f"profile {self.name!r} has no stages")
        names = [stage.name for stage in self.stages]
        repeated = sorted({name for name in names if names.count(name) > 1})
        if repeated:
            raise ValueError(f"profile {self.name!r} repeats stage names: {', '.join(repeated)}")
        if self.max_rps > self.rps_cap:
            raise ValueError(
                f"profile {self.name!r} asks for {_fmt(self.max_rps)} req/s, "
                f"over its rate cap of {_fmt(self.rps_cap)} req/s (rps_cap)"
            )
        if self.duration_s > self.duration_cap_s * (1 + 1e-9):
            raise ValueError(
                f"profile {self.name!r} runs {_fmt(self.duration_s)} s, over its duration cap "
                f"of {_fmt(self.duration_cap_s)} s (duration_cap_s): use fewer or shorter steps"
            )

    @property
    def duration_s(self) -> float:
        """Total length of the stages (no drain tail)."""
        return sum(stage.duration_s for stage in self.stages)

    @property
    def max_rps(self) -> float:
        """The highest rate any stage asks for."""
        return max(stage.rps for stage in self.stages)


@dataclass(frozen=True)
class ProfileParams:
    """What the builders need; checked up front so a bad value names itself.

    ``average_rps`` is everyday traffic, ``peak_rps`` the busiest hour the service must carry
    (for a lab, near the measured knee). Every stage lasts ``step_s`` unless said otherwise.
    """

    average_rps: float
    peak_rps: float
    step_s: float = 60.0
    rps_cap: float = DEFAULT_RPS_CAP
    """Hard rate cap: stages above it are clipped to it (and breakpoint stops below it)."""
    duration_cap_s: float = DEFAULT_DURATION_CAP_S
    """Hard duration cap on a profile's stages."""
    steps: int = 3
    """average: flat steps; peak: steps from average up to peak."""
    increment: float = 0.1
    """breakpoint: rate added per step, as a share of ``peak_rps``."""
    breakpoint_factor: float = 3.0
    """breakpoint: the last step is at most this times ``peak_rps`` (and never above the cap)."""
    spike_factor: float = 2.0
    """spike: the spike's rate, times ``peak_rps``."""
    spike_s: float = 10.0
    """spike: how long the spike lasts."""
    overload_factor: float = 1.3
    """ramp-and-recover: the overload's rate, times ``peak_rps`` (past the knee)."""
    soak_s: float = 1200.0
    """soak: total length, cut into ``step_s`` stages so drift shows stage by stage."""

    def __post_init__(self) -> None:
        positive = ("average_rps", "peak_rps", "step_s", "rps_cap", "duration_cap_s")
        for name in (*positive, "increment", "spike_s", "soak_s"):
            _positive(name, getattr(self, name))
        for name in ("breakpoint_factor", "spike_factor", "overload_factor"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 1):
                raise ValueError(f"{name} must be a finite number >= 1, got {value!r}")
        if isinstance(self.steps, bool) or not isinstance(self.steps, int) or self.steps < 1:
            raise ValueError(f"steps must be an integer >= 1, got {self.steps!r}")
        if self.peak_rps < self.average_rps:
            raise ValueError(
                f"peak_rps ({_fmt(self.peak_rps)}) must be >= average_rps "
                f"({_fmt(self.average_rps)})"
            )
        if self.peak_rps > self.rps_cap:
            raise ValueError(
                f"peak_rps ({_fmt(self.peak_rps)}) must be <= rps_cap ({_fmt(self.rps_cap)})"
            )
        if self.step_s > self.duration_cap_s:
            raise ValueError(
                f"step_s ({_fmt(self.step_s)}) must be <= duration_cap_s "
                f"({_fmt(self.duration_cap_s)})"
            )

    def capped(self, rps: float) -> float:
        """``rps`` rounded to 0.1 req/s and clipped to the rate cap."""
        return min(round(rps, 1), self.rps_cap)


PREDICTED_AVERAGE_SHARE = 0.5
PREDICTED_PEAK_SHARE = 1.0
"""Rates derived from a predicted saturation P when the user gives none: average 0.5 P and
peak P, so the ``peak`` profile runs 0.5, 0.67, 0.83, 1.0, 1.25 and 1.5 P. That brackets the
knees measured against the prediction: 0.71-1.03 P over the default mix's runs (README
"capacity model"), and above 1.2 P where the first probe of a cold service reads it slow. Such
a peak is where the ramp looks, not a load the service must carry (no exit 4)."""


def rates_around(predicted_rps: float, rps_cap: float = DEFAULT_RPS_CAP) -> tuple[float, float]:
    """Average and peak req/s that bracket a predicted saturation, within the rate cap."""
    _positive("predicted_rps", predicted_rps)
    peak = min(round(PREDICTED_PEAK_SHARE * predicted_rps, 1), rps_cap)
    average = min(round(PREDICTED_AVERAGE_SHARE * predicted_rps, 1), peak)
    return max(average, 0.1), max(peak, 0.1)


def _stage(label: str, duration_s: float, rps: float) -> Stage:
    return Stage(f"{label} ({_fmt(rps)} req/s)", duration_s, rps)


def _average(p: ProfileParams) -> tuple[Stage, ...]:
    return tuple(
        _stage(f"average {i}/{p.steps}", p.step_s, p.average_rps) for i in range(1, p.steps + 1)
    )


def _peak(p: ProfileParams) -> tuple[Stage, ...]:
    stages = [_stage("average", p.step_s, p.average_rps)]
    for i in range(1, p.steps):
        rps = p.capped(p.average_rps + (p.peak_rps - p.average_rps) * i / p.steps)
        stages.append(_stage(f"step {i}", p.step_s, rps))
    stages.append(_stage("peak", p.step_s, p.peak_rps))
    for factor in (1.25, 1.5):
        stages.append(_stage(f"{factor:g}x peak", p.step_s, p.capped(factor * p.peak_rps)))
    return tuple(stages)


def _breakpoint(p: ProfileParams) -> tuple[Stage, ...]:
    ceiling = min(p.rps_cap, p.breakpoint_factor * p.peak_rps)
    stages = []
    for k in range(int(p.duration_cap_s // p.step_s)):
        raw = p.average_rps + k * p.increment * p.peak_rps
        if raw > ceiling * (1 + 1e-9):
            break
        stages.append(_stage(f"step {k + 1}", p.step_s, min(round(raw, 1), ceiling)))
    return tuple(stages)


def _spike(p: ProfileParams) -> tuple[Stage, ...]:
    return (
        _stage("average", p.step_s, p.average_rps),
        _stage("spike", p.spike_s, p.capped(p.spike_factor * p.peak_rps)),
        _stage("recover", p.step_s, p.average_rps),
        _stage("hold", p.step_s, p.average_rps),
    )


def _soak(p: ProfileParams) -> tuple[Stage, ...]:
    if p.soak_s > p.duration_cap_s:
        raise ValueError(
            f"soak_s ({_fmt(p.soak_s)}) must be <= duration_cap_s ({_fmt(p.duration_cap_s)})"
        )
    count = math.ceil(p.soak_s / p.step_s - 1e-6)
    return tuple(
        _stage(f"soak {i + 1}/{count}", min(p.step_s, p.soak_s - i * p.step_s), p.average_rps)
        for i in range(count)
    )


def _ramp_and_recover(p: ProfileParams) -> tuple[Stage, ...]:
    return (
        _stage("average", p.step_s, p.average_rps),
        _stage("peak", p.step_s, p.peak_rps),
        _stage("overload", p.step_s, p.capped(p.overload_factor * p.peak_rps)),
        _stage("recover", p.step_s, p.average_rps),
        _stage("hold", p.step_s, p.average_rps),
    )


class ProfileSpec(NamedTuple):
    """A registry entry: what the profile is for, and how to build its stages."""

    description: str
    build: Callable[[ProfileParams], tuple[Stage, ...]]


PROFILES: Mapping[str, ProfileSpec] = MappingProxyType(
    {
        "average": ProfileSpec("flat at the average rate: the baseline", _average),
        "peak": ProfileSpec(
            "average, evenly up to peak, then 1.25x and 1.5x peak: where does it bend?", _peak
        ),
        "breakpoint": ProfileSpec(
            "from average, +increment x peak each step up to the ceiling: find the tipping point",
            _breakpoint,
        ),
        "spike": ProfileSpec(
            "average, a short spike to spike_factor x peak, back to average: does it recover?",
            _spike,
        ),
        "soak": ProfileSpec("average for a long time: leaks, drift, slow exhaustion", _soak),
        "ramp-and-recover": ProfileSpec(
            "average, peak, past the knee, back to average and hold: metastable or not?",
            _ramp_and_recover,
        ),
    }
)


def build_profile(name: str, params: ProfileParams) -> Profile:
    """Build the named profile; unknown names raise ValueError listing the known ones."""
    spec = PROFILES.get(name)
    if spec is None:
        raise ValueError(f"unknown profile {name!r}; known profiles: {', '.join(PROFILES)}")
    return Profile(
        name,
        spec.description,
        spec.build(params),
        rps_cap=params.rps_cap,
        duration_cap_s=params.duration_cap_s,
    )
