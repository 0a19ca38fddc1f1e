"""Start-up settings as live knobs (the table, the refusal), and a running stack's knobs read,
set and put back exactly, against an in-memory stack behind httpx2.MockTransport."""

from __future__ import annotations

from collections.abc import Mapping

import pytest
from pydantic import BaseModel

from demo_service.faults import FaultsUpdate
from demo_service.resilience.presets import ResilienceConfig
from demo_service.settings import Settings
from demo_service.slow_api import KnobsUpdate
from loadtests.attach.live_settings import (
    LIVE_KNOBS,
    LiveKnob,
    LiveSettings,
    NoLiveKnob,
    live_changes,
    live_knob,
    needs_applied,
)
from loadtests.attach.running_stack import AttachError
from loadtests.faults.injector import KnobInjector
from loadtests.scenarios.base import LOW_KNEE_SETTINGS
from loadtests.scenarios.registry import SCENARIOS, load
from tests.unit.fake_stack import SERVICE, SLOW_API, TOKEN, FakeStack


def _is_setting(name: str) -> bool:
    """``BRINK_DB__POOL_MAX`` names a field of :class:`Settings`."""
    model: type[BaseModel] = Settings
    *groups, leaf = name.removeprefix("BRINK_").lower().split("__")
    for group in groups:
        annotation = model.model_fields[group].annotation
        assert isinstance(annotation, type)
        assert issubclass(annotation, BaseModel)
        model = annotation
    return leaf in model.model_fields


def _is_knob(knob: LiveKnob) -> bool:
    if knob.target == "service":
        return knob.knob in FaultsUpdate.model_fields
    if knob.target == "slow_api":
        return knob.knob in KnobsUpdate.model_fields
    if knob.knob == "preset":
        return True
    group, _, leaf = knob.knob.partition(".")
    annotation = ResilienceConfig.model_fields[group].annotation
    assert isinstance(annotation, type)
    assert issubclass(annotation, BaseModel)
    return leaf in annotation.model_fields


@pytest.mark.parametrize(("setting", "knob"), sorted(LIVE_KNOBS.items()))
def test_every_row_joins_a_real_setting_to_a_real_knob(setting: str, knob: LiveKnob) -> None:
    assert _is_setting(setting), setting
    assert _is_knob(knob), knob


def test_resilience_settings_are_the_knob_of_the_same_name() -> None:
    assert live_knob("BRINK_RESILIENCE__SHEDDING__LIMIT") == LiveKnob(
        "resilience", "shedding.limit"
    )
    assert live_knob("BRINK_RESILIENCE__PRESET") == LiveKnob("resilience", "preset")
    assert live_knob("BRINK_RESILIENCE__SHEDDING") is None  # a whole group is no knob
    assert live_knob("BRINK_CPU__ITERATIONS") is None
    assert live_knob("BRINK_EXTERNAL__READ_TIMEOUT_S") is None


def test_the_pools_sizes_are_the_service_knobs_that_swap_them() -> None:
    changes = live_changes(
        {
            "BRINK_DB__POOL_MAX": "8",
            "BRINK_DB__POOL_MIN": "8",
            "BRINK_EXTERNAL__MAX_CONNECTIONS": "5",
            "BRINK_EXTERNAL__MAX_KEEPALIVE": "5",
        }
    )
    assert changes == {
        "service": {
            "pool_size": 8,
            "pool_min": 8,
            "external_pool_size": 5,
            "external_keepalive": 5,
        }
    }
    FaultsUpdate.model_validate(changes["service"])  # a body the service takes


def test_settings_become_one_typed_body_per_target() -> None:
    changes = live_changes(
        {
            "BRINK_DB__POOL_MAX": "2",
            "BRINK_DB__EXTRA_LATENCY_S": "0.07",
            "BRINK_RESILIENCE__SHEDDING__LIMIT": "40",
            "BRINK_RESILIENCE__BREAKER__ENABLED": "true",
            "BRINK_RESILIENCE__RETRY__POLICY": "naive",
            "BRINK_SLOW_API__OUTAGE": "hang",
            "BRINK_DB__ACQUIRE_TIMEOUT_S": "0.25",
        }
    )
    assert changes == {
        "service": {"pool_size": 2, "db_latency_s": 0.07},
        "resilience": {
            "shedding": {"limit": 40},
            "breaker": {"enabled": True},
            "retry": {"policy": "naive"},
            "deadlines": {"db_acquire_s": 0.25},
        },
        "slow_api": {"outage": "hang"},
    }


def test_a_setting_without_a_live_knob_is_refused_by_name() -> None:
    settings = {"BRINK_DB__POOL_MAX": "2", "BRINK_CPU__ITERATIONS": "2000"}
    with pytest.raises(NoLiveKnob) as refused:
        live_changes(settings)
    message = str(refused.value)
    assert message.startswith("BRINK_CPU__ITERATIONS: read only at start-up")
    assert "BRINK_DB__POOL_MAX" not in message
    assert "drop --stack" in message
    assert "brink up --set CPU__ITERATIONS=2000" in message
    assert isinstance(refused.value, AttachError)


def test_every_scenario_can_run_on_a_running_stack() -> None:
    for name in SCENARIOS:
        changes = live_changes(load(name).needs.settings)
        FaultsUpdate.model_validate(changes.get("service", {}))
    assert live_changes(load("metastable").needs.settings)["service"] == {
        "external_pool_size": 5,
        "external_keepalive": 5,
    }
    assert live_changes(load("fragile-vs-resilient").needs.settings)["service"] == {
        "pool_size": 8,
        "pool_min": 8,
        "db_latency_s": 0.08,
    }


# --- snapshot, set, reset, restore -------------------------------------------------------------


def _lived_in() -> FakeStack:
    """A stack someone has been using: nothing at its defaults."""
    stack = FakeStack()
    stack.preset = "resilient"
    stack.overrides = {"shedding": {"limit": 40}}
    stack.faults["hot_items"] = 20
    stack.control["extra_latency_s"] = 0.1
    return stack


def _live(stack: FakeStack, settings: Mapping[str, str]) -> LiveSettings:
    knobs = KnobInjector(SERVICE, SLOW_API, TOKEN, transport=stack.transport)
    return LiveSettings(knobs, live_changes(settings))


NEEDS = {**LOW_KNEE_SETTINGS, "BRINK_SLOW_API__BASE_LATENCY_S": "0.05"}


def test_apply_sets_the_needs_and_restore_puts_back_exactly_what_was_found() -> None:
    stack = _lived_in()
    found = stack.state()
    live = _live(stack, {**NEEDS, "BRINK_RESILIENCE__PRESET": "fragile"})
    live.snapshot()
    live.apply()
    assert stack.faults["pool_size"] == 2
    assert stack.faults["db_latency_s"] == 0.07
    assert stack.faults["hot_items"] == 20  # untouched
    assert stack.control["base_latency_s"] == 0.05
    assert (stack.preset, stack.overrides) == ("fragile", {})
    assert live.restore() == []
    assert stack.state() == found


@pytest.mark.parametrize("scenario", ["metastable", "fragile-vs-resilient"])
def test_a_lessons_pool_sizes_are_set_and_put_back(scenario: str) -> None:
    stack = _lived_in()
    stack.faults.update(external_pool_size=20, pool_min=2)  # a room's stack, resized before
    found = stack.state()
    live = _live(stack, load(scenario).needs.settings)
    live.snapshot()
    live.apply()
    for knob, value in live.needs["service"].items():
        assert stack.faults[knob] == value
    assert live.restore() == []
    assert stack.state() == found


def test_reset_goes_back_to_as_found_plus_the_needs() -> None:
    stack = _lived_in()
    live = _live(stack, NEEDS)
    live.snapshot()
    live.apply()
    applied = stack.state()
    stack.faults.update(db_latency_s=0.5, pool_size=9)  # what a scenario does between phases
    stack.preset, stack.overrides = "adaptive", {}
    stack.control["outage"] = "hang"
    live.reset()
    assert stack.state() == applied


def test_restore_puts_back_every_target_it_can_and_names_the_one_it_cannot() -> None:
    stack = _lived_in()
    found = stack.state()
    live = _live(stack, NEEDS)
    live.snapshot()
    live.apply()
    stack.failing.add("/admin/faults")
    problems = live.restore()
    assert len(problems) == 2  # the PUT, then the check
    assert all("/admin/faults" in problem for problem in problems)
    assert stack.control == found["control"]
    assert (stack.preset, stack.overrides) == (found["preset"], found["overrides"])


class _Stop(Exception):
    """What the CLI raises on SIGINT/SIGTERM."""


def test_a_stop_inside_the_block_still_restores() -> None:
    stack = _lived_in()
    found = stack.state()
    live = _live(stack, NEEDS)
    live.snapshot()
    said: list[str] = []
    seen: list[int] = []

    def interrupted() -> None:
        with needs_applied(live, said.append):
            seen.append(stack.faults["pool_size"])
            raise _Stop("SIGINT")

    with pytest.raises(_Stop):
        interrupted()
    assert seen == [2]
    assert stack.state() == found
    assert said[-1] == "stack settings put back as found (faults, resilience, slow API)"


def test_a_setting_the_stack_refuses_fails_the_run_and_changes_nothing() -> None:
    stack = _lived_in()
    found = stack.state()
    live = _live(stack, {"BRINK_DB__POOL_MAX": "2"})
    live.needs["service"]["no_such_knob"] = 1
    live.snapshot()
    with pytest.raises(AttachError, match=r"refused a setting.*422"), needs_applied(live, print):
        pytest.fail("the block must not run")
    assert stack.state() == found


def test_a_failed_restore_is_said_loudly() -> None:
    stack = _lived_in()
    live = _live(stack, NEEDS)
    live.snapshot()
    said: list[str] = []
    with needs_applied(live, said.append):
        stack.failing.add("/control")
    assert said[-1].startswith("COULD NOT PUT THE STACK BACK as found: ")
    assert "/control" in said[-1]
