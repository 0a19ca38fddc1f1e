"""CPU use from ``/proc``: a process's, a process tree's and the whole box's busy time."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class CpuSample:
    """A point-in-time reading; subtract two with :meth:`usage_since`."""

    at: float
    process_s: float
    tree_s: float
    box_busy_s: float

    def usage_since(self, earlier: CpuSample) -> CpuUsage:
        wall = self.at - earlier.at
        return CpuUsage(
            wall_s=wall,
            process_cores=_per_s(self.process_s - earlier.process_s, wall),
            tree_cores=_per_s(self.tree_s - earlier.tree_s, wall),
            box_cores=_per_s(self.box_busy_s - earlier.box_busy_s, wall),
        )


@dataclass(frozen=True)
class CpuUsage:
    """Average CPU over a window, in cores (1.0 = one core fully busy)."""

    wall_s: float
    process_cores: float
    tree_cores: float
    box_cores: float


def sample(pid: int, tree_root: int | None = None) -> CpuSample:
    """Read the CPU time of ``pid``, of ``tree_root`` with its children, and of the box now."""
    return CpuSample(
        at=time.monotonic(),
        process_s=_process_s(pid),
        tree_s=0.0 if tree_root is None else _tree_s(tree_root),
        box_busy_s=_box_busy_s(),
    )


def _per_s(amount: float, wall: float) -> float:
    return amount / wall if wall > 0 else 0.0


def _ticks_per_s() -> int:
    return os.sysconf("SC_CLK_TCK")


def _stat_fields(stat_file: Path) -> list[str] | None:
    """stat(5) fields after the command name: index 0 is field 3 (state)."""
    try:
        return stat_file.read_text().rpartition(")")[2].split()
    except OSError:
        return None


def _cpu_s(fields: list[str]) -> float:
    return (int(fields[11]) + int(fields[12])) / _ticks_per_s()  # utime, stime


def _process_s(pid: int) -> float:
    fields = _stat_fields(Path(f"/proc/{pid}/stat"))
    return 0.0 if fields is None else _cpu_s(fields)


def _tree_s(root: int) -> float:
    """CPU time of ``root`` and its children, also those that exited (e.g. a postmaster).

    Postgres backends start their own sessions, so a process group would miss them: they are
    found by parent pid; the root's cutime/cstime hold the children it has already reaped.
    """
    fields = _stat_fields(Path(f"/proc/{root}/stat"))
    if fields is None:
        return 0.0
    total = _cpu_s(fields) + (int(fields[13]) + int(fields[14])) / _ticks_per_s()
    for stat_file in Path("/proc").glob("[0-9]*/stat"):
        child = _stat_fields(stat_file)
        if child is not None and int(child[1]) == root:
            total += _cpu_s(child)
    return total


def _box_busy_s() -> float:
    try:
        first = Path("/proc/stat").read_text().splitlines()[0].split()
    except OSError:
        return 0.0
    values = [int(v) for v in first[1:9]]  # user nice system idle iowait irq softirq steal
    idle = values[3] + values[4]
    return (sum(values) - idle) / _ticks_per_s()
