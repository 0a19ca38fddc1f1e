"""The rate schedule and the Locust-facing driver, on a fake clock: no sleeping, no Locust."""

from __future__ import annotations

import itertools
import subprocess
import sys
from pathlib import Path

import pytest

from loadtests.profiles import PROFILES, Profile, ProfileParams, Stage, build_profile
from loadtests.shapes import (
    DEFAULT_DRAIN_S,
    DRAIN,
    RateSchedule,
    ShapeDriver,
    Tick,
    dispatchers_for,
    rate_per_dispatcher,
)

PROFILE = Profile("p", "", (Stage("warm", 10, 100), Stage("push", 5, 95), Stage("ease", 10, 30)))


class FakeClock:
    """A clock the test moves by hand."""

    def __init__(self, now: float = 0.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_ticks_inside_a_stage() -> None:
    schedule = RateSchedule(PROFILE, drain_s=4)

    assert schedule.at(3) == Tick(0, "warm", 100, 3, 7, 26)
    assert schedule.at(12.5) == Tick(1, "push", 95, 2.5, 2.5, 16.5)


def test_a_stage_edge_belongs_to_the_next_stage() -> None:
    schedule = RateSchedule(PROFILE, drain_s=4)

    assert schedule.at(0) == Tick(0, "warm", 100, 0, 10, 29)
    just_before = schedule.at(9.999)
    assert just_before is not None
    assert just_before.stage_name == "warm"
    assert schedule.at(10) == Tick(1, "push", 95, 0, 5, 19)
    assert schedule.at(15) == Tick(2, "ease", 30, 0, 10, 14)


def test_a_drain_tail_at_zero_follows_the_last_stage_then_none() -> None:
    schedule = RateSchedule(PROFILE, drain_s=4)

    assert (schedule.load_s, schedule.duration_s) == (25, 29)
    assert schedule.at(25) == Tick(3, DRAIN, 0.0, 0, 4, 4)
    drain_end = schedule.at(28.99)
    assert drain_end is not None
    assert (drain_end.stage_name, drain_end.rps) == (DRAIN, 0.0)
    assert schedule.at(29) is None
    assert schedule.at(1e9) is None
    assert schedule.at(float("inf")) is None


def test_no_drain_ends_with_the_last_stage() -> None:
    schedule = RateSchedule(PROFILE, drain_s=0)

    assert schedule.duration_s == 25
    assert [window.name for window in schedule.windows] == ["warm", "push", "ease"]
    assert schedule.at(25) is None


def test_default_drain() -> None:
    assert RateSchedule(PROFILE).duration_s == 25 + DEFAULT_DRAIN_S


def test_windows_are_contiguous() -> None:
    schedule = RateSchedule(build_profile("spike", ProfileParams(150, 190)))
    windows = schedule.windows

    assert windows[0].start_s == 0
    assert all(a.end_s == b.start_s for a, b in itertools.pairwise(windows))
    assert [w.index for w in windows] == list(range(len(windows)))
    assert windows[-1].name == DRAIN
    assert windows[1].duration_s == 10


def test_negative_time_counts_as_the_start_and_nan_is_refused() -> None:
    schedule = RateSchedule(PROFILE)

    assert schedule.at(-1) == schedule.at(0)
    with pytest.raises(ValueError, match="elapsed_s must be a number"):
        schedule.at(float("nan"))


@pytest.mark.parametrize("drain_s", [-1, 301, float("nan"), float("inf")])
def test_drain_is_validated(drain_s: float) -> None:
    with pytest.raises(ValueError, match="drain_s must be between 0 and 300"):
        RateSchedule(PROFILE, drain_s=drain_s)


def test_the_schedule_never_runs_past_the_duration_cap() -> None:
    profile = Profile("p", "", (Stage("a", 10, 1), Stage("b", 10, 2), Stage("c", 10, 3)))
    object.__setattr__(profile, "duration_cap_s", 15.0)  # a profile that slipped its own check

    schedule = RateSchedule(profile, drain_s=2)

    assert [(w.name, w.start_s, w.end_s) for w in schedule.windows] == [
        ("a", 0, 10),
        ("b", 10, 15),
        (DRAIN, 15, 17),
    ]
    assert schedule.at(15) == Tick(2, DRAIN, 0.0, 0, 2, 2)
    assert schedule.at(17) is None


@pytest.mark.parametrize(
    ("rps", "slice_rps", "expected"),
    [(95, 10, 10), (100, 10, 10), (100.5, 10, 11), (0, 10, 0), (0.01, 10, 1), (1.1, 0.1, 11)],
)
def test_dispatchers_for(rps: float, slice_rps: float, expected: int) -> None:
    assert dispatchers_for(rps, slice_rps) == expected


@pytest.mark.parametrize(
    ("rps", "slice_rps", "message"),
    [
        (10, 0, "slice_rps must be a finite number > 0"),
        (10, float("nan"), "slice_rps must be"),
        (-1, 10, "rps must be a finite number >= 0"),
        (float("inf"), 10, "rps must be"),
    ],
)
def test_dispatchers_for_is_validated(rps: float, slice_rps: float, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        dispatchers_for(rps, slice_rps)


def test_95_rps_at_10_per_slice_is_10_dispatchers_at_9_5_each() -> None:
    users = dispatchers_for(95, 10)

    assert users == 10
    assert rate_per_dispatcher(95, users) == 9.5


@pytest.mark.parametrize("slice_rps", [1, 7.5, 10, 25])
def test_even_split_is_exact_and_never_exceeds_a_slice(slice_rps: float) -> None:
    for tenths in range(0, 20_001, 37):
        rps = tenths / 10
        users = dispatchers_for(rps, slice_rps)
        each = rate_per_dispatcher(rps, users)
        assert each * users == pytest.approx(rps, abs=1e-9)
        assert each <= slice_rps + 1e-9
        assert users == 0 or each > 0


def test_rate_per_dispatcher_edges() -> None:
    assert rate_per_dispatcher(0, 0) == 0.0
    with pytest.raises(ValueError, match="needs at least one dispatcher"):
        rate_per_dispatcher(5, 0)
    with pytest.raises(ValueError, match="users must be >= 0"):
        rate_per_dispatcher(5, -1)


def test_driver_walks_the_schedule_then_ends() -> None:
    clock = FakeClock()
    driver = ShapeDriver(RateSchedule(PROFILE, drain_s=4), slice_rps=10, clock=clock)
    seen = []
    for second in range(31):
        clock.now = second
        seen.append(driver.tick())

    spawn = driver.spawn_rate
    assert seen[0:10] == [(10, spawn)] * 10
    assert seen[10:15] == [(10, spawn)] * 5
    assert seen[15:25] == [(3, spawn)] * 10
    assert seen[25:29] == [(0, spawn)] * 4
    assert seen[29:] == [None, None]


def test_driver_current_reports_the_stage_in_force() -> None:
    clock = FakeClock(12.0)
    driver = ShapeDriver(RateSchedule(PROFILE, drain_s=4), slice_rps=10, clock=clock)

    assert driver.current() == Tick(1, "push", 95, 2, 3, 17)
    clock.now = 100
    assert driver.current() is None


def test_spawn_rate_covers_the_largest_step_including_the_drain() -> None:
    profile = Profile("p", "", (Stage("a", 10, 50), Stage("b", 10, 200), Stage("c", 10, 190)))
    driver = ShapeDriver(RateSchedule(profile), slice_rps=10, clock=FakeClock())

    assert driver.spawn_rate == 19.0  # 19 dispatchers stop at once when the drain starts


def test_spawn_rate_is_at_least_one() -> None:
    profile = Profile("p", "", (Stage("idle", 10, 0),))
    driver = ShapeDriver(RateSchedule(profile), slice_rps=10, clock=FakeClock())

    assert driver.spawn_rate == 1.0
    assert driver.tick() == (0, 1.0)


@pytest.mark.parametrize("name", list(PROFILES))
def test_every_named_profile_drives_to_the_end(name: str) -> None:
    clock = FakeClock()
    schedule = RateSchedule(build_profile(name, ProfileParams(150, 190)))
    driver = ShapeDriver(schedule, slice_rps=10, clock=clock)
    peak_users = 0
    while (tick := driver.tick()) is not None:
        peak_users = max(peak_users, tick[0])
        clock.now += 1
    assert clock.now == pytest.approx(schedule.duration_s)
    assert peak_users == dispatchers_for(schedule.profile.max_rps, 10)


def test_driver_rejects_a_bad_slice() -> None:
    with pytest.raises(ValueError, match="slice_rps must be"):
        ShapeDriver(RateSchedule(PROFILE), slice_rps=0, clock=FakeClock())


def test_importing_profiles_and_shapes_leaves_locust_and_gevent_out() -> None:
    code = (
        "import sys, loadtests.profiles, loadtests.shapes; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('locust', 'gevent')))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=Path(__file__).parents[2],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    assert result.stdout.strip() == "[]"
