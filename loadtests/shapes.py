"""The rate shape as data, plus a thin tick with an injectable clock.

:class:`RateSchedule` maps seconds since the start to the stage in force (a :class:`Tick`).
After the last stage comes a drain tail at 0 req/s, so requests still in flight finish and land
in the stats; then ``None``: the run is over. With a LoadTestShape Locust ignores
``--run-time``, so the shape itself must end the run.

:class:`ShapeDriver` turns a tick into the ``(users, spawn_rate)`` that Locust's
``LoadTestShape.tick`` returns. Each Locust user is an arrival dispatcher worth at most
``slice_rps`` of the rate, so a stage of ``rps`` needs ``ceil(rps / slice_rps)`` of them.
Locust is not imported here (it patches the process with gevent): the locustfile's shape class
delegates to a driver built with ``clock=self.get_run_time``.
Model: locust ``locust/shape.py`` and ``examples/custom_shape/stages.py``.
"""

from __future__ import annotations

import bisect
import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass

from loadtests.profiles import Profile

DRAIN = "drain"
"""Name of the tail stage at 0 req/s."""
DEFAULT_DRAIN_S = 12.0
"""The client timeout (10 s) plus 2 s: the drain the field notes found enough."""
MAX_DRAIN_S = 300.0


@dataclass(frozen=True)
class StageWindow:
    """Where one stage sits on the run's clock: ``[start_s, end_s)``."""

    index: int
    name: str
    rps: float
    start_s: float
    end_s: float

    @property
    def duration_s(self) -> float:
        return self.end_s - self.start_s


@dataclass(frozen=True)
class Tick:
    """The stage in force at one moment, and how far along the run is."""

    stage_index: int
    stage_name: str
    rps: float
    stage_elapsed_s: float
    stage_remaining_s: float
    total_remaining_s: float


def _windows(profile: Profile, drain_s: float) -> tuple[StageWindow, ...]:
    """The profile's stages laid end to end, cut at its duration cap, then the drain tail."""
    windows: list[StageWindow] = []
    start = 0.0
    for index, stage in enumerate(profile.stages):
        if start >= profile.duration_cap_s:
            break
        end = min(start + stage.duration_s, profile.duration_cap_s)
        windows.append(StageWindow(index, stage.name, stage.rps, start, end))
        start = end
    if drain_s > 0:
        windows.append(StageWindow(len(windows), DRAIN, 0.0, start, start + drain_s))
    return tuple(windows)


class RateSchedule:
    """A profile on a clock: which stage, at what rate, at ``elapsed_s`` seconds.

    Stages are half-open, so at a stage's exact end the next one is in force. The load never
    runs longer than ``profile.duration_cap_s`` (a guard even against a profile that slipped
    past its own check); the drain tail comes on top of it.
    """

    def __init__(self, profile: Profile, drain_s: float = DEFAULT_DRAIN_S) -> None:
        if not (math.isfinite(drain_s) and 0 <= drain_s <= MAX_DRAIN_S):
            raise ValueError(f"drain_s must be between 0 and {MAX_DRAIN_S:g}, got {drain_s!r}")
        self.profile = profile
        self.drain_s = drain_s
        self.windows = _windows(profile, drain_s)
        self._ends = [window.end_s for window in self.windows]

    @property
    def duration_s(self) -> float:
        """The whole run: the (capped) stages plus the drain tail."""
        return self._ends[-1]

    @property
    def load_s(self) -> float:
        """The (capped) stages alone: when the drain tail starts."""
        return self.duration_s - self.drain_s

    def at(self, elapsed_s: float) -> Tick | None:
        """The tick at ``elapsed_s`` (negative counts as 0); ``None`` once the run is over."""
        if math.isnan(elapsed_s):
            raise ValueError("elapsed_s must be a number, got nan")
        elapsed_s = max(elapsed_s, 0.0)
        position = bisect.bisect_right(self._ends, elapsed_s)
        if position == len(self.windows):
            return None
        window = self.windows[position]
        return Tick(
            stage_index=window.index,
            stage_name=window.name,
            rps=window.rps,
            stage_elapsed_s=elapsed_s - window.start_s,
            stage_remaining_s=window.end_s - elapsed_s,
            total_remaining_s=self.duration_s - elapsed_s,
        )


def _check_slice(slice_rps: float) -> None:
    if not (math.isfinite(slice_rps) and slice_rps > 0):
        raise ValueError(f"slice_rps must be a finite number > 0, got {slice_rps!r}")


def dispatchers_for(rps: float, slice_rps: float) -> int:
    """Dispatchers needed for ``rps`` when each carries at most ``slice_rps``: 0 for 0 req/s."""
    _check_slice(slice_rps)
    if not (math.isfinite(rps) and rps >= 0):
        raise ValueError(f"rps must be a finite number >= 0, got {rps!r}")
    if rps == 0:
        return 0
    # The tolerance keeps float noise (1.1 / 0.1 == 11.000000000000002) from adding one.
    return max(1, math.ceil(rps / slice_rps - 1e-9))


def rate_per_dispatcher(rps: float, users: int) -> float:
    """Each dispatcher's rate so that ``users`` of them offer exactly ``rps`` in total.

    Even split: every dispatcher gets ``rps / users`` (95 req/s over 10 -> 9.5 each), never
    more than a slice when ``users == dispatchers_for(rps, slice)``. Dispatchers need no
    identity, so the total stays exact however Locust spreads them over workers.
    """
    if users < 0:
        raise ValueError(f"users must be >= 0, got {users}")
    if users == 0:
        if rps != 0:
            raise ValueError(f"{rps:g} req/s needs at least one dispatcher")
        return 0.0
    return rps / users


class ShapeDriver:
    """What a Locust LoadTestShape delegates to: a schedule, a slice size and a clock.

    The spawn rate is constant for the run and covers the largest change in dispatchers
    between consecutive stages (drain included), so every step applies within about a second
    and Locust sees a new tick only when the user count changes.
    """

    def __init__(
        self, schedule: RateSchedule, slice_rps: float, clock: Callable[[], float]
    ) -> None:
        _check_slice(slice_rps)
        self.schedule = schedule
        self.slice_rps = slice_rps
        self._clock = clock
        counts = [0, *(dispatchers_for(w.rps, slice_rps) for w in schedule.windows), 0]
        self.spawn_rate = float(max(1, *(abs(b - a) for a, b in itertools.pairwise(counts))))

    def current(self) -> Tick | None:
        """The stage in force now (for metrics and reports); ``None`` once the run is over."""
        return self.schedule.at(self._clock())

    def tick(self) -> tuple[int, float] | None:
        """``(users, spawn_rate)`` for Locust, or ``None`` to end the run."""
        now = self.current()
        if now is None:
            return None
        return dispatchers_for(now.rps, self.slice_rps), self.spawn_rate
