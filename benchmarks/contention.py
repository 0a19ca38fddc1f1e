"""Who else used the CPU meanwhile: a background sampler of every process on the box.

Every ``interval_s`` it reads ``/proc`` and splits the CPU time used since the last reading
into this harness (its process and every descendant), Postgres (any ``postgres`` process:
ours are started by ``pg_ctl`` and so are not our descendants) and everything else. On a
2-core box "other" is the figure that says whether a measurement competed with someone's tests.

Each reading also times a fixed pure-Python loop on this thread's own CPU clock
(``time.thread_time``: run-queue waits are not in it). Its spread says how much the box's speed
itself moved (a shared host's neighbours, its clock): CPU-bound figures move with it.
"""

from __future__ import annotations

import os
import statistics
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field, replace
from pathlib import Path

from benchmarks import cpu
from loadtests.box_speed import spin_ms

_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
_POSTGRES = ("postgres", "postmaster")


@dataclass(frozen=True)
class _Proc:
    ppid: int
    name: str
    cpu_s: float


def _processes() -> dict[int, _Proc]:
    found = {}
    for stat_file in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat_file.read_text()
        except OSError:
            continue
        name = text[text.find("(") + 1 : text.rfind(")")]
        fields = text.rpartition(")")[2].split()
        ticks = int(fields[11]) + int(fields[12])
        found[int(stat_file.parent.name)] = _Proc(int(fields[1]), name, ticks / _TICKS)
    return found


def _label(pid: int, name: str) -> str:
    """``name``; for Python, the module (``-m``) or script it runs (never its arguments)."""
    if not name.startswith("python"):
        return name
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return name
    words = [w.decode(errors="replace") for w in argv[1:] if w]
    if "-m" in words[:-1]:
        return f"{name} -m {words[words.index('-m') + 1]}"
    script = next((w for w in words if not w.startswith("-")), "")
    return f"{name} {Path(script).name}" if script else name


def _descendants(root: int, procs: dict[int, _Proc]) -> set[int]:
    mine, grew = {root}, True
    while grew:
        more = {pid for pid, p in procs.items() if p.ppid in mine} - mine
        mine |= more
        grew = bool(more)
    return mine


@dataclass(frozen=True)
class Interval:
    """CPU used between two readings, in cores."""

    start: float
    end: float
    box: float
    harness: float
    postgres: float
    other: float
    top_other: tuple[tuple[str, float], ...]
    spin_ms: float = 0.0
    """CPU ms the fixed loop took at the end of the interval (:func:`spin_ms`)."""


@dataclass
class Contention:
    """Average load per part of the run (by wall-clock span)."""

    box: float
    harness: float
    postgres: float
    other: float
    other_max: float
    top_other: list[tuple[str, float]] = field(default_factory=list)
    spin_ms: tuple[float, float, float] = (0.0, 0.0, 0.0)
    """The fixed loop's CPU ms over the part: fastest, median, slowest."""

    @property
    def speed_spread(self) -> float:
        """How much slower the slowest loop ran than the fastest (0.25 = 25% slower)."""
        fastest, _, slowest = self.spin_ms
        return slowest / fastest - 1 if fastest > 0 else 0.0


class CpuWatch:
    """Samples in a daemon thread from :meth:`start` until :meth:`stop`."""

    def __init__(self, interval_s: float = 2.0) -> None:
        self.interval_s = interval_s
        self.intervals: list[Interval] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> CpuWatch:
        self._thread = threading.Thread(target=self._run, name="cpu-watch", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def _run(self) -> None:
        root = os.getpid()
        before, box_before, at = _processes(), cpu.sample(root).box_busy_s, time.monotonic()
        while not self._stop.wait(self.interval_s):
            now, box_now, now_at = _processes(), cpu.sample(root).box_busy_s, time.monotonic()
            interval = _interval(root, before, now, box_now - box_before, at, now_at)
            self.intervals.append(replace(interval, spin_ms=spin_ms()))
            before, box_before, at = now, box_now, now_at

    def between(self, start: float, end: float) -> Contention | None:
        """The mean of the intervals inside ``[start, end]`` (``time.monotonic()``)."""
        inside = [i for i in self.intervals if i.start >= start - 1 and i.end <= end + 1]
        if not inside:
            return None
        span = sum(i.end - i.start for i in inside)

        def mean(name: str) -> float:
            return float(sum(getattr(i, name) * (i.end - i.start) for i in inside)) / span

        spins = [i.spin_ms for i in inside]
        top: defaultdict[str, float] = defaultdict(float)
        for i in inside:
            for name, cores in i.top_other:
                top[name] += cores * (i.end - i.start) / span
        return Contention(
            box=mean("box"),
            harness=mean("harness"),
            postgres=mean("postgres"),
            other=mean("other"),
            other_max=max(i.other for i in inside),
            top_other=[(n, round(c, 2)) for n, c in sorted(top.items(), key=lambda t: -t[1])[:3]],
            spin_ms=(min(spins), statistics.median(spins), max(spins)),
        )


def _interval(
    root: int, before: dict[int, _Proc], now: dict[int, _Proc], box_s: float, at: float,
    now_at: float,
) -> Interval:  # fmt: skip
    wall = max(now_at - at, 1e-9)
    mine = _descendants(root, now)
    harness = postgres = other = 0.0
    others: defaultdict[str, float] = defaultdict(float)
    for pid, proc in now.items():
        used = proc.cpu_s - (before[pid].cpu_s if pid in before else 0.0)
        if pid not in before and used > wall:
            continue  # started before the reading under a recycled pid: not this interval's
        if pid in mine:
            harness += used
        elif proc.name in _POSTGRES:
            postgres += used
        else:
            other += used
            others[_label(pid, proc.name)] += used
    return Interval(
        start=at,
        end=now_at,
        box=box_s / wall,
        harness=harness / wall,
        postgres=postgres / wall,
        other=other / wall,
        top_other=tuple(
            (n, c / wall) for n, c in sorted(others.items(), key=lambda t: -t[1])[:3] if c > 0
        ),
    )
