"""How fast the box's CPUs run right now: a fixed loop timed on each CPU's own clock.

On a shared host (a CI runner, a cloud VM) a CPU's speed moves: a neighbour on the same
physical core, the host's clock. On the 2-core box brink is measured on, one CPU ran the same
loop 40% or more slower than the other in a third of the readings, for seconds to minutes at a
time. A CPU-bound service's capacity moves with it, so a prediction made from a probe on a slow
spell can miss a knee measured on a fast one. The ramp records these readings during the probe
and in every stage so a report can say whether the box held its speed, instead of blaming (or
crediting) the model.

The loop is timed on ``time.thread_time`` (CPU time of this thread only): waiting for a turn on
the CPU is not in it, only how fast the instructions ran. Where a thread can be pinned
(``os.sched_setaffinity``, Linux) the loop runs once on each CPU; elsewhere once, wherever the
scheduler puts it. Machines with many CPUs are read on their first eight only (about 5 ms
each), so a reading stays cheap enough to take every second.
"""

from __future__ import annotations

import contextlib
import os
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass

_SPIN_LOOPS = 100_000
_MAX_CPUS = 8
MOVED = 0.15
"""A change of the mean loop time beyond this share counts as the box's speed having moved."""


def spin_ms() -> float:
    """CPU milliseconds a fixed pure-Python loop takes on this thread (about 4-5 ms)."""
    started = time.thread_time()
    total = 0
    for i in range(_SPIN_LOOPS):
        total += i * i
    return (time.thread_time() - started) * 1e3


def cpu_speeds() -> tuple[float, ...]:
    """The loop's CPU ms on each CPU this process may use, up to eight (one reading where none
    can be pinned).

    Pins only the calling thread (``pid`` 0 is the thread on Linux), and restores its mask. Where
    pinning is refused (a container's changing CPU set), one unpinned reading.
    """
    if not hasattr(os, "sched_setaffinity"):
        return (spin_ms(),)
    allowed = os.sched_getaffinity(0)
    readings = []
    try:
        for cpu in sorted(allowed)[:_MAX_CPUS]:
            os.sched_setaffinity(0, {cpu})
            readings.append(spin_ms())
    except OSError:
        return (spin_ms(),)
    finally:
        with contextlib.suppress(OSError):
            os.sched_setaffinity(0, allowed)
    return tuple(readings)


@dataclass(frozen=True)
class BoxSpeed:
    """The loop's median CPU ms per CPU over some readings (lower is faster)."""

    per_cpu_ms: tuple[float, ...]

    @classmethod
    def of(cls, readings: Sequence[Sequence[float]]) -> BoxSpeed | None:
        """The per-CPU medians of ``readings`` (each a :func:`cpu_speeds`); None if empty."""
        usable = [r for r in readings if r]
        if not usable or len({len(r) for r in usable}) != 1:
            return None
        return cls(tuple(statistics.median(column) for column in zip(*usable, strict=True)))

    @property
    def mean_ms(self) -> float:
        return statistics.fmean(self.per_cpu_ms)

    def describe(self) -> str:
        """``"4.0 / 6.8 ms"``: the loop's time on each CPU."""
        return " / ".join(f"{ms:.1f}" for ms in self.per_cpu_ms) + " ms"


def speed_change(before: BoxSpeed, after: BoxSpeed) -> float | None:
    """How much slower the box ran ``after`` than ``before`` (-0.25: 25% faster; 0: the same),
    None when the two were not read on as many CPUs (not the same machine, or not alike).

    By the mean loop time over the CPUs: which CPU a process runs on is the scheduler's choice.
    """
    if len(before.per_cpu_ms) != len(after.per_cpu_ms) or before.mean_ms <= 0:
        return None
    return after.mean_ms / before.mean_ms - 1


def moved(change: float) -> bool:
    """Is a :func:`speed_change` beyond :data:`MOVED`: the box's speed moved?"""
    return abs(change) > MOVED
