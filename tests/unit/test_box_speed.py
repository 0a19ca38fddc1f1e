"""The box's speed readings: medians per CPU, and when a change counts as the box moving."""

from __future__ import annotations

import os

import pytest

from loadtests.box_speed import BoxSpeed, cpu_speeds, moved, speed_change, spin_ms


def test_the_fixed_loop_takes_cpu_time() -> None:
    assert spin_ms() > 0.0


def test_one_reading_per_cpu_the_process_may_use_and_the_mask_is_restored() -> None:
    if not hasattr(os, "sched_getaffinity"):
        pytest.skip("no CPU affinity on this platform: one unpinned reading")
    allowed = os.sched_getaffinity(0)
    readings = cpu_speeds()
    assert len(readings) == min(len(allowed), 8)
    assert all(ms > 0 for ms in readings)
    assert os.sched_getaffinity(0) == allowed


def test_where_pinning_is_refused_one_unpinned_reading(monkeypatch: pytest.MonkeyPatch) -> None:
    if not hasattr(os, "sched_setaffinity"):
        pytest.skip("no CPU affinity on this platform")

    def refuse(pid: int, mask: object) -> None:
        raise OSError(22, "Invalid argument")

    monkeypatch.setattr(os, "sched_setaffinity", refuse)
    (reading,) = cpu_speeds()
    assert reading > 0


def test_a_speed_is_the_median_of_each_cpu_over_its_readings() -> None:
    speed = BoxSpeed.of([(4.0, 7.0), (4.2, 6.0), (9.0, 6.5)])
    assert speed == BoxSpeed((4.2, 6.5))
    assert speed.mean_ms == pytest.approx(5.35)
    assert speed.describe() == "4.2 / 6.5 ms"


def test_no_readings_or_readings_of_different_machines_give_no_speed() -> None:
    assert BoxSpeed.of([]) is None
    assert BoxSpeed.of([(), ()]) is None
    assert BoxSpeed.of([(4.0,), (4.0, 5.0)]) is None


def test_a_change_beyond_15_percent_of_the_mean_loop_time_is_the_box_moving() -> None:
    probe = BoxSpeed((4.0, 6.0))
    assert speed_change(probe, BoxSpeed((4.0, 4.0))) == pytest.approx(-0.2)
    assert moved(-0.2)
    assert speed_change(probe, BoxSpeed((6.0, 4.5))) == pytest.approx(0.05)
    assert not moved(0.05)
    assert moved(0.4)


def test_speeds_read_on_different_numbers_of_cpus_do_not_compare() -> None:
    assert speed_change(BoxSpeed((4.0, 6.0)), BoxSpeed((4.0,))) is None
