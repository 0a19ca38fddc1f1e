"""Client-side measurements as a per-second series, mergeable across generator processes.

Every request is filed under the wall-clock second in which it *started* (its arrival), so a
stage's figures come from that stage's own requests, wherever they finished. Each second holds
counts and a log-bucketed latency histogram; seconds from several worker processes merge by
addition, and any window of seconds aggregates into the client half of a
:class:`~loadtests.samples.StageSample`. Pure: no clock, no I/O, no Locust.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

# Log-spaced latency buckets: 2.5% wide, from 0.1 ms up; percentiles are read at bucket tops,
# so a reported percentile is at most 2.5% above the truth.
_GROWTH = 1.025
_FLOOR_S = 0.0001
_LOG_GROWTH = math.log(_GROWTH)


def bucket_of(latency_s: float) -> int:
    """Index of the histogram bucket holding ``latency_s``."""
    if latency_s <= _FLOOR_S:
        return 0
    return 1 + int(math.log(latency_s / _FLOOR_S) / _LOG_GROWTH)


def bucket_top(index: int) -> float:
    """Upper edge of bucket ``index`` in seconds."""
    return _FLOOR_S * _GROWTH**index


@dataclass
class Second:
    """Everything that happened to the requests that arrived in one second."""

    arrivals: int = 0
    """Requests the generator started."""
    dropped: int = 0
    """Arrivals the generator could not start (in-flight cap reached or running late)."""
    completed: int = 0
    ok: int = 0
    good: int = 0
    """Successful and within the SLO."""
    retries: int = 0
    """Extra attempts the generator's own retry policy sent for these arrivals."""
    errors: Counter[str] = field(default_factory=Counter)
    latency: Counter[int] = field(default_factory=Counter)
    """Histogram of all completed requests' latencies, failures included."""

    def merge(self, other: Second) -> None:
        self.arrivals += other.arrivals
        self.dropped += other.dropped
        self.completed += other.completed
        self.ok += other.ok
        self.good += other.good
        self.retries += other.retries
        self.errors.update(other.errors)
        self.latency.update(other.latency)

    def to_dict(self) -> dict[str, Any]:
        return {
            "arrivals": self.arrivals,
            "dropped": self.dropped,
            "completed": self.completed,
            "ok": self.ok,
            "good": self.good,
            "retries": self.retries,
            "errors": dict(self.errors),
            "latency": {str(k): v for k, v in self.latency.items()},
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Second:
        return cls(
            arrivals=data["arrivals"],
            dropped=data["dropped"],
            completed=data["completed"],
            ok=data["ok"],
            good=data["good"],
            retries=data.get("retries", 0),
            errors=Counter(data["errors"]),
            latency=Counter({int(k): v for k, v in data["latency"].items()}),
        )


class Series:
    """Seconds keyed by integer wall-clock time (epoch seconds)."""

    def __init__(self, slo_s: float) -> None:
        self.slo_s = slo_s
        self.seconds: dict[int, Second] = {}

    def _at(self, started: float) -> Second:
        key = int(started)
        second = self.seconds.get(key)
        if second is None:
            second = self.seconds[key] = Second()
        return second

    def arrival(self, started: float) -> None:
        self._at(started).arrivals += 1

    def retry(self, started: float) -> None:
        self._at(started).retries += 1

    def drop(self, at: float, count: int = 1) -> None:
        self._at(at).dropped += count

    def completion(self, started: float, latency_s: float, error: str | None) -> None:
        """File one finished request; ``error`` is its failure kind, None for a success."""
        second = self._at(started)
        second.completed += 1
        second.latency[bucket_of(latency_s)] += 1
        if error is None:
            second.ok += 1
            if latency_s <= self.slo_s:
                second.good += 1
        else:
            second.errors[error] += 1

    def merge(self, seconds: Mapping[int, Second]) -> None:
        for key, second in seconds.items():
            mine = self.seconds.get(key)
            if mine is None:
                self.seconds[key] = mine = Second()
            mine.merge(second)

    def take(self) -> dict[int, Second]:
        """Hand over everything recorded so far and start afresh (a worker's report delta)."""
        seconds, self.seconds = self.seconds, {}
        return seconds

    def to_dict(self) -> dict[str, Any]:
        return {str(key): second.to_dict() for key, second in sorted(self.seconds.items())}

    @staticmethod
    def seconds_from_dict(data: Mapping[str, Any]) -> dict[int, Second]:
        return {int(key): Second.from_dict(value) for key, value in data.items()}


def percentile(histogram: Mapping[int, int], q: float) -> float | None:
    """The ``q`` quantile (0..1) of a bucket histogram, read at the bucket's top edge."""
    total = sum(histogram.values())
    if total == 0:
        return None
    rank = max(1, math.ceil(q * total))
    seen = 0
    for index in sorted(histogram):
        seen += histogram[index]
        if seen >= rank:
            return bucket_top(index)
    return bucket_top(max(histogram))


@dataclass(frozen=True)
class WindowStats:
    """The client's figures over a window of whole seconds."""

    window_s: float
    offered_rps: float
    achieved_rps: float
    goodput_rps: float
    dropped_rps: float
    p50_s: float | None
    p95_s: float | None
    p99_s: float | None
    errors: dict[str, int]
    requests: int


def window(seconds: Mapping[int, Second], start: int, end: int) -> WindowStats:
    """Aggregate the seconds ``start <= s < end``; rates are per second of the window."""
    total = Second()
    for key in range(start, end):
        second = seconds.get(key)
        if second is not None:
            total.merge(second)
    length = max(end - start, 1)
    return WindowStats(
        window_s=float(length),
        offered_rps=total.arrivals / length,
        achieved_rps=total.completed / length,
        goodput_rps=total.good / length,
        dropped_rps=total.dropped / length,
        p50_s=percentile(total.latency, 0.50),
        p95_s=percentile(total.latency, 0.95),
        p99_s=percentile(total.latency, 0.99),
        errors=dict(total.errors),
        requests=total.completed,
    )


def totals(seconds: Iterable[Second]) -> Second:
    """All the given seconds added up."""
    total = Second()
    for second in seconds:
        total.merge(second)
    return total
