"""The harness's CPU watch as arithmetic: intervals in, a part's mean load and speed spread out."""

from __future__ import annotations

import pytest

from benchmarks.contention import CpuWatch, Interval


def _interval(start: float, other: float, spin: float) -> Interval:
    return Interval(
        start=start, end=start + 2.0, box=1.0, harness=0.5, postgres=0.2, other=other,
        top_other=(("noisy", other),), spin_ms=spin,
    )  # fmt: skip


def test_a_part_gets_the_mean_load_and_the_spread_of_the_fixed_loop() -> None:
    watch = CpuWatch()
    watch.intervals = [_interval(0.0, 0.1, 5.0), _interval(2.0, 0.3, 6.5), _interval(4.0, 0.2, 5.5)]
    part = watch.between(0.0, 6.0)
    assert part is not None
    assert part.other == pytest.approx(0.2)
    assert part.other_max == pytest.approx(0.3)
    assert part.spin_ms == (5.0, 5.5, 6.5)
    assert part.speed_spread == pytest.approx(0.3)
    assert watch.between(100.0, 110.0) is None
