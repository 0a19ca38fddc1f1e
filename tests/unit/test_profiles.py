"""Named load profiles: each builds, stays under its caps and has the shape its name says."""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from loadtests.profiles import (
    DEFAULT_DURATION_CAP_S,
    DEFAULT_RPS_CAP,
    PROFILES,
    Profile,
    ProfileParams,
    Stage,
    build_profile,
    rates_around,
)

PARAMS = ProfileParams(average_rps=150, peak_rps=190)


def rates(profile: Profile) -> list[float]:
    return [stage.rps for stage in profile.stages]


@pytest.mark.parametrize("name", list(PROFILES))
def test_every_profile_builds_within_its_caps(name: str) -> None:
    profile = build_profile(name, PARAMS)

    assert profile.name == name
    assert profile.description == PROFILES[name].description != ""
    assert profile.stages
    assert all(stage.duration_s > 0 for stage in profile.stages)
    assert all(stage.rps > 0 for stage in profile.stages)
    assert profile.max_rps <= DEFAULT_RPS_CAP
    assert 0 < profile.duration_s <= DEFAULT_DURATION_CAP_S
    assert len({stage.name for stage in profile.stages}) == len(profile.stages)


@pytest.mark.parametrize("name", list(PROFILES))
def test_every_profile_respects_tight_caps(name: str) -> None:
    params = ProfileParams(average_rps=150, peak_rps=190, rps_cap=200, duration_cap_s=1200)
    profile = build_profile(name, params)

    assert (profile.rps_cap, profile.duration_cap_s) == (200, 1200)
    assert profile.max_rps <= 200
    assert profile.duration_s <= 1200


def test_average_is_flat() -> None:
    profile = build_profile("average", ProfileParams(150, 190, step_s=30, steps=4))

    assert rates(profile) == [150] * 4
    assert profile.duration_s == 120
    assert profile.stages[0].name == "average 1/4 (150 req/s)"


def test_peak_climbs_evenly_to_peak_then_goes_beyond() -> None:
    profile = build_profile("peak", PARAMS)

    assert rates(profile) == [150, 163.3, 176.7, 190, 237.5, 285]
    assert [stage.name for stage in profile.stages] == [
        "average (150 req/s)",
        "step 1 (163.3 req/s)",
        "step 2 (176.7 req/s)",
        "peak (190 req/s)",
        "1.25x peak (237.5 req/s)",
        "1.5x peak (285 req/s)",
    ]
    assert profile.duration_s == 6 * 60


def test_peak_beyond_steps_are_clipped_to_the_rate_cap() -> None:
    profile = build_profile("peak", ProfileParams(150, 190, rps_cap=200))

    assert rates(profile)[-3:] == [190, 200, 200]
    assert profile.stages[-1].name == "1.5x peak (200 req/s)"


def test_breakpoint_adds_a_fixed_increment_up_to_the_ceiling() -> None:
    profile = build_profile("breakpoint", PARAMS)
    steps = rates(profile)

    assert steps[0] == 150
    assert all(b - a == pytest.approx(19) for a, b in itertools.pairwise(steps))
    assert steps[-1] <= 3 * 190 < steps[-1] + 19
    assert profile.stages[2].name == "step 3 (188 req/s)"


def test_breakpoint_stops_at_the_rate_cap() -> None:
    profile = build_profile("breakpoint", ProfileParams(100, 100, increment=0.5, rps_cap=250))

    assert rates(profile) == [100, 150, 200, 250]


def test_breakpoint_stops_at_the_duration_cap() -> None:
    params = ProfileParams(100, 100, step_s=60, duration_cap_s=300, breakpoint_factor=10)
    profile = build_profile("breakpoint", params)

    assert len(profile.stages) == 5
    assert profile.duration_s == 300


def test_spike_is_short_and_returns_to_average() -> None:
    profile = build_profile("spike", PARAMS)
    average, spike, *after = profile.stages

    assert average.rps == 150
    assert spike.name == "spike (380 req/s)"
    assert (spike.rps, spike.duration_s) == (380, 10)
    assert spike.duration_s < average.duration_s
    assert [stage.rps for stage in after] == [150, 150]
    assert [stage.name for stage in after] == ["recover (150 req/s)", "hold (150 req/s)"]


def test_soak_is_long_flat_and_cut_into_steps() -> None:
    profile = build_profile("soak", ProfileParams(150, 190, step_s=60, soak_s=150))

    assert rates(profile) == [150, 150, 150]
    assert [stage.duration_s for stage in profile.stages] == [60, 60, 30]
    assert profile.stages[-1].name == "soak 3/3 (150 req/s)"
    assert build_profile("soak", PARAMS).duration_s == 1200


def test_ramp_and_recover_goes_past_the_knee_then_ends_at_average() -> None:
    profile = build_profile("ramp-and-recover", PARAMS)

    assert rates(profile) == [150, 190, 247, 150, 150]
    assert profile.max_rps > PARAMS.peak_rps
    assert profile.stages[-1].rps == PARAMS.average_rps


def test_unknown_profile_lists_the_known_ones() -> None:
    with pytest.raises(ValueError, match="unknown profile 'stress'") as caught:
        build_profile("stress", PARAMS)
    assert all(name in str(caught.value) for name in PROFILES)


def test_the_registry_is_read_only() -> None:
    with pytest.raises(TypeError):
        PROFILES["mine"] = PROFILES["average"]  # type: ignore[index]


def test_too_many_steps_break_the_duration_cap() -> None:
    with pytest.raises(ValueError, match=r"runs 2580 s, over its duration cap .*duration_cap_s"):
        build_profile("peak", ProfileParams(150, 190, steps=40))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"average_rps": 0}, r"average_rps must be a finite number > 0, got 0"),
        ({"average_rps": -5}, r"average_rps must be"),
        ({"peak_rps": float("nan")}, r"peak_rps must be a finite number > 0"),
        ({"step_s": 0}, r"step_s must be"),
        ({"rps_cap": 0}, r"rps_cap must be"),
        ({"duration_cap_s": float("inf")}, r"duration_cap_s must be"),
        ({"increment": 0}, r"increment must be"),
        ({"spike_s": -1}, r"spike_s must be"),
        ({"soak_s": 0}, r"soak_s must be"),
        ({"spike_factor": 0.5}, r"spike_factor must be a finite number >= 1"),
        ({"overload_factor": 0.9}, r"overload_factor must be"),
        ({"breakpoint_factor": 0.9}, r"breakpoint_factor must be"),
        ({"steps": 0}, r"steps must be an integer >= 1, got 0"),
        ({"steps": 2.5}, r"steps must be an integer"),
        ({"peak_rps": 100}, r"peak_rps \(100\) must be >= average_rps \(150\)"),
        ({"peak_rps": 2500}, r"peak_rps \(2500\) must be <= rps_cap \(2000\)"),
        ({"step_s": 2000}, r"step_s \(2000\) must be <= duration_cap_s \(1800\)"),
    ],
)
def test_params_are_validated(kwargs: dict[str, Any], message: str) -> None:
    values: dict[str, Any] = {"average_rps": 150, "peak_rps": 190, **kwargs}
    with pytest.raises(ValueError, match=message):
        ProfileParams(**values)


def test_a_soak_longer_than_the_duration_cap_names_soak_s() -> None:
    params = ProfileParams(150, 190, soak_s=3600)

    with pytest.raises(ValueError, match=r"soak_s \(3600\) must be <= duration_cap_s \(1800\)"):
        build_profile("soak", params)
    assert build_profile("peak", params).duration_s == 360


def test_peak_equal_to_average_is_allowed() -> None:
    profile = build_profile("peak", ProfileParams(150, 150))

    assert rates(profile)[:4] == [150, 150, 150, 150]


@pytest.mark.parametrize(
    ("stage", "message"),
    [
        (("", 10, 1), "stage name must not be empty"),
        (("a", 0, 1), "stage 'a' duration_s must be a finite number > 0"),
        (("a", 10, -1), "stage 'a' rps must be a finite number >= 0"),
        (("a", 10, float("inf")), "stage 'a' rps must be"),
    ],
)
def test_stages_are_validated(stage: tuple[str, float, float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Stage(*stage)


def test_a_pause_at_zero_rps_is_a_valid_stage() -> None:
    assert Stage("pause", 5, 0).rps == 0


@pytest.mark.parametrize(
    ("stages", "caps", "message"),
    [
        ((), {}, "profile 'p' has no stages"),
        ((Stage("a", 1, 1), Stage("a", 1, 2)), {}, "repeats stage names: a"),
        ((Stage("a", 1, 300),), {"rps_cap": 200}, r"asks for 300 req/s, over .* \(rps_cap\)"),
        ((Stage("a", 20, 1),), {"duration_cap_s": 10}, r"runs 20 s, over .*duration_cap_s"),
        ((Stage("a", 1, 1),), {"rps_cap": 0}, "rps_cap must be"),
    ],
)
def test_profiles_are_validated(
    stages: tuple[Stage, ...], caps: dict[str, float], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        Profile("p", "", stages, **caps)


def test_profile_totals() -> None:
    profile = Profile("p", "", (Stage("a", 10, 100), Stage("b", 5, 250), Stage("c", 2.5, 0)))

    assert profile.duration_s == 17.5
    assert profile.max_rps == 250


def test_rates_around_a_prediction_bracket_the_knees_measured_against_it() -> None:
    average, peak = rates_around(400.0)
    assert (average, peak) == (200.0, 400.0)
    stages = build_profile("peak", ProfileParams(average, peak)).stages
    ratios = [stage.rps / 400.0 for stage in stages]
    assert ratios == pytest.approx([0.5, 0.667, 0.833, 1.0, 1.25, 1.5], abs=1e-3)
    # the knees measured against the prediction (0.71-1.03 P) lie inside the ramp
    assert min(ratios) < 0.71
    assert max(ratios) > 1.03


def test_rates_around_stay_within_the_cap_and_refuse_nonsense() -> None:
    assert rates_around(5000.0, rps_cap=1000.0) == (1000.0, 1000.0)
    with pytest.raises(ValueError, match="predicted_rps"):
        rates_around(0.0)
