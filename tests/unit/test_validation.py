"""A boolean is not a number in any request body or resilience knob (found by schemathesis:
``POST /orders {"item_id": true}`` ordered item 1), while settings from the environment —
strings — still read as numbers."""

from __future__ import annotations

import pytest
from pydantic import BaseModel, ValidationError

from demo_service.faults import FaultsUpdate
from demo_service.resilience.presets import DeadlinesConfig, ResilienceOverrides
from demo_service.routes.orders import OrderIn
from demo_service.settings import load_settings
from demo_service.slow_api import KnobsUpdate


@pytest.mark.parametrize(
    ("model", "body"),
    [
        (OrderIn, {"item_id": True}),
        (OrderIn, {"item_id": 1, "quantity": False}),
        (FaultsUpdate, {"pool_size": True}),
        (FaultsUpdate, {"db_latency_s": True}),
        (KnobsUpdate, {"capacity": True}),
        (KnobsUpdate, {"error_rate": False}),
        (ResilienceOverrides, {"retry": {"naive_attempts": True}}),
        (ResilienceOverrides, {"deadlines": {"db_acquire_s": True}}),
    ],
)
def test_a_boolean_is_refused_where_a_number_is_declared(
    model: type[BaseModel], body: dict[str, object]
) -> None:
    with pytest.raises(ValidationError, match="must be a number, not a boolean"):
        model.model_validate(body)


def test_numbers_and_booleans_still_go_where_they_belong() -> None:
    assert OrderIn.model_validate({"item_id": 3, "quantity": 2}).quantity == 2
    overrides = ResilienceOverrides.model_validate({"breaker": {"enabled": True}})
    assert overrides.overrides() == {"breaker": {"enabled": True}}
    assert DeadlinesConfig.model_validate({"db_acquire_s": 1}).db_acquire_s == 1.0


def test_environment_strings_still_read_as_numbers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BRINK_RESILIENCE__DEADLINES__DB_ACQUIRE_S", "0.4")
    monkeypatch.setenv("BRINK_RESILIENCE__RETRY__NAIVE_ATTEMPTS", "3")
    settings = load_settings()
    assert settings.resilience.deadlines.db_acquire_s == 0.4
    assert settings.resilience.retry.naive_attempts == 3
