"""Resilience presets as data, overrides laid over them, and their settings at start-up."""

from __future__ import annotations

from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from pydantic import ValidationError

from demo_service.app import start_up_resilience
from demo_service.metrics import ServiceMetrics
from demo_service.resilience.presets import (
    ADAPTIVE,
    FRAGILE,
    PRESETS,
    RESILIENT,
    ResilienceOverrides,
    combine,
    merge,
)
from demo_service.settings import SettingsError, load_settings


def test_fragile_is_what_most_code_does() -> None:
    deadlines = FRAGILE.deadlines
    assert (deadlines.db_acquire_s, deadlines.db_statement_s, deadlines.external_s) == (0, 0, 0)
    assert FRAGILE.retry.policy == "naive"
    assert not FRAGILE.breaker.enabled
    assert not FRAGILE.shedding.enabled
    assert not FRAGILE.bulkhead.enabled


def test_resilient_has_every_mechanism_on() -> None:
    assert all(
        value > 0 for value in RESILIENT.deadlines.model_dump().values()
    )  # every stage bounded
    assert RESILIENT.retry.policy == "budgeted"
    assert RESILIENT.breaker.enabled
    assert RESILIENT.bulkhead.enabled
    assert RESILIENT.shedding.enabled
    assert RESILIENT.shedding.limiter == "static"
    assert RESILIENT.shedding.limit == 25  # FIELD-NOTES: 25 in flight recovered the failure
    assert RESILIENT.bulkhead.limit < RESILIENT.shedding.limit  # a hang cannot take every slot


def test_adaptive_is_resilient_with_an_aimd_limit() -> None:
    assert ADAPTIVE.shedding.limiter == "aimd"
    assert ADAPTIVE.model_copy(update={"shedding": RESILIENT.shedding}) == RESILIENT
    assert set(PRESETS) == {"fragile", "resilient", "adaptive"}


def test_overrides_change_only_the_knobs_given() -> None:
    config = merge("fragile", {"shedding": {"enabled": True, "limit": 40}})
    assert config.shedding.enabled
    assert config.shedding.limit == 40
    assert config.shedding.max_queue_s == FRAGILE.shedding.max_queue_s
    assert config.retry == FRAGILE.retry
    assert merge("resilient", {}) == RESILIENT


def test_a_partial_config_knows_which_knobs_were_given() -> None:
    partial = ResilienceOverrides.model_validate(
        {"deadlines": {"external_s": 0}, "breaker": {"cooldown_s": 1}}
    )
    assert partial.overrides() == {"deadlines": {"external_s": 0.0}, "breaker": {"cooldown_s": 1.0}}
    assert ResilienceOverrides().overrides() == {}


def test_combine_lays_knobs_over_knobs() -> None:
    first: dict[str, dict[str, Any]] = {
        "shedding": {"limit": 3, "enabled": True},
        "retry": {"policy": "none"},
    }
    assert combine(first, {"shedding": {"limit": 9}}) == {
        "shedding": {"limit": 9, "enabled": True},
        "retry": {"policy": "none"},
    }
    assert first["shedding"]["limit"] == 3  # inputs untouched


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"breaker": {"min_calls": 30}}, r"breaker.min_calls \(30\) exceeds breaker.window \(20\)"),
        ({"adaptive": {"min_limit": 50}}, "adaptive.min_limit <= adaptive.initial_limit"),
        ({"retry": {"base_delay_s": 5}}, "retry.base_delay_s"),
        ({"shedding": {"limit": 0}}, "greater than or equal to 1"),
        ({"shedding": {"limiter": "gradient"}}, "'static' or 'aimd'"),
        ({"bulkhead": {"size": 3}}, "Extra inputs are not permitted"),
    ],
)
def test_a_combination_that_does_not_hold_is_refused(
    overrides: dict[str, dict[str, object]], reason: str
) -> None:
    with pytest.raises(ValidationError, match=reason):
        merge("resilient", overrides)


def test_a_consistent_change_of_both_knobs_is_accepted() -> None:
    config = merge("resilient", {"breaker": {"min_calls": 30, "window": 40}})
    assert (config.breaker.min_calls, config.breaker.window) == (30, 40)


def test_start_up_preset_and_overrides_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert load_settings().resilience.preset == "fragile"
    monkeypatch.setenv("BRINK_RESILIENCE__PRESET", "adaptive")
    monkeypatch.setenv("BRINK_RESILIENCE__SHEDDING__MAX_QUEUE_S", "0.02")
    monkeypatch.setenv("BRINK_RESILIENCE__DEADLINES__EXTERNAL_S", "0")
    resilience = load_settings().resilience
    assert resilience.preset == "adaptive"
    assert resilience.overrides() == {
        "shedding": {"max_queue_s": 0.02},
        "deadlines": {"external_s": 0.0},
    }
    assert "preset='adaptive'" in repr(resilience)
    assert "limit=25" not in repr(resilience)  # defaults not in force are not shown


@pytest.mark.parametrize(
    ("variable", "value", "named"),
    [
        ("BRINK_RESILIENCE__PRESET", "sturdy", "BRINK_RESILIENCE__PRESET"),
        ("BRINK_RESILIENCE__RETRY__POLICY", "always", "BRINK_RESILIENCE__RETRY__POLICY"),
        ("BRINK_RESILIENCE__SHEDDING__LIMIT", "0", "BRINK_RESILIENCE__SHEDDING__LIMIT"),
        ("BRINK_RESILIENCE__DEADLINES__DB_ACQUIRE_S", "-1", "DEADLINES__DB_ACQUIRE_S"),
        ("BRINK_RESILIENCE__BREAKER__ENABLED", "maybe", "BRINK_RESILIENCE__BREAKER__ENABLED"),
        ("BRINK_RESILIENCE__BREAKER__MIN_CALLS", "99", "BRINK_RESILIENCE: "),
    ],
)
def test_a_bad_resilience_setting_stops_start_up_naming_it(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, named: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(SettingsError, match=named) as caught:
        load_settings()
    assert "\n" not in str(caught.value)


def test_the_acquire_timeout_setting_is_a_shorthand_for_the_acquire_deadline() -> None:
    def acquire_s(**settings: object) -> float | None:
        resilience = start_up_resilience(
            load_settings(**settings), ServiceMetrics(CollectorRegistry())
        )
        return resilience.deadlines.db_acquire.seconds

    assert acquire_s() is None  # fragile: unbounded
    assert acquire_s(db={"acquire_timeout_s": 0.3}) == 0.3
    both = {"deadlines": {"db_acquire_s": 0.1}}
    assert acquire_s(db={"acquire_timeout_s": 0.3}, resilience=both) == 0.1
