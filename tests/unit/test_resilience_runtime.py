"""The live mechanisms: switching presets and knobs in place, and the external call's wiring.

External calls use ``httpx2.MockTransport`` (no network): bulkhead → breaker → retry → deadline.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import httpx2
import pytest
from prometheus_client import CollectorRegistry
from pydantic import ValidationError

from demo_service.external import ExternalApi, ExternalError
from demo_service.metrics import ServiceMetrics
from demo_service.resilience.adaptive import AimdLimiter
from demo_service.resilience.breaker import BreakerOpen, State
from demo_service.resilience.bulkhead import BulkheadFull
from demo_service.resilience.deadlines import DeadlineExceeded
from demo_service.resilience.retry import BudgetedRetry, NaiveRetry, NoRetry
from demo_service.resilience.runtime import Resilience
from demo_service.resilience.shedding import StaticLimiter
from demo_service.settings import ExternalSettings
from tests.support import eventually

QUOTE = {"item_id": 1, "quantity": 1, "carrier": "swiftship", "price_cents": 300}


@pytest.fixture
def metrics() -> ServiceMetrics:
    return ServiceMetrics(CollectorRegistry())


def _value(metrics: ServiceMetrics, metric: str, **labels: str) -> float | None:
    return metrics.registry.get_sample_value(metric, labels)


def test_fragile_has_nothing_on(metrics: ServiceMetrics) -> None:
    resilience = Resilience(metrics.resilience, "fragile")
    assert resilience.deadlines.db_acquire.seconds is None
    assert resilience.deadlines.external.seconds is None
    assert isinstance(resilience.retry["external"], NaiveRetry)
    assert not resilience.breaker.enabled
    assert resilience.bulkhead.limit is None
    assert resilience.admission.limiter is None
    assert _value(metrics, "brink_admission_limit") == 0
    assert _value(metrics, "brink_bulkhead_limit", name="external") == 0


def test_a_preset_switch_changes_every_mechanism_and_its_gauges(metrics: ServiceMetrics) -> None:
    resilience = Resilience(metrics.resilience, "fragile")
    resilience.update("resilient", {})
    assert resilience.preset == "resilient"
    assert resilience.deadlines.db_acquire.seconds == 0.25
    assert isinstance(resilience.retry["db"], BudgetedRetry)
    assert resilience.breaker.enabled
    assert isinstance(resilience.admission.limiter, StaticLimiter)
    assert _value(metrics, "brink_admission_limit") == 25
    assert _value(metrics, "brink_bulkhead_limit", name="external") == 10

    resilience.update("adaptive", {})
    assert isinstance(resilience.admission.limiter, AimdLimiter)
    assert _value(metrics, "brink_admission_limit") == 20


def test_knobs_change_in_place_and_untouched_mechanisms_keep_their_state(
    metrics: ServiceMetrics,
) -> None:
    resilience = Resilience(metrics.resilience, "resilient")
    breaker, limiter, policy = (
        resilience.breaker,
        resilience.admission.limiter,
        resilience.retry["external"],
    )
    resilience.update(None, {"shedding": {"limit": 40}, "bulkhead": {"limit": 3}})
    assert resilience.preset == "resilient"
    assert resilience.overrides == {"shedding": {"limit": 40}, "bulkhead": {"limit": 3}}
    assert isinstance(limiter, StaticLimiter)
    assert resilience.admission.limiter is limiter
    assert limiter.limit == 40
    assert resilience.breaker is breaker  # no knob of it changed: its state is kept
    assert resilience.retry["external"] is policy
    assert resilience.bulkhead.limit == 3

    resilience.update(None, {"retry": {"policy": "none"}, "breaker": {"enabled": False}})
    assert isinstance(resilience.retry["external"], NoRetry)
    assert resilience.breaker is not breaker
    assert not resilience.breaker.enabled
    assert resilience.overrides["shedding"] == {"limit": 40}  # earlier overrides stay


def test_a_new_preset_drops_earlier_overrides(metrics: ServiceMetrics) -> None:
    resilience = Resilience(metrics.resilience, "resilient", {"shedding": {"limit": 40}})
    resilience.update("adaptive", {"adaptive": {"initial_limit": 30}})
    assert resilience.overrides == {"adaptive": {"initial_limit": 30}}
    assert resilience.admission.limiter is not None
    assert resilience.admission.limiter.limit == 30

    resilience.reset()
    assert (resilience.preset, resilience.overrides) == ("resilient", {"shedding": {"limit": 40}})
    assert _value(metrics, "brink_admission_limit") == 40


def test_an_invalid_update_changes_nothing(metrics: ServiceMetrics) -> None:
    resilience = Resilience(metrics.resilience, "resilient")
    before = resilience.config
    with pytest.raises(ValidationError, match=r"breaker\.min_calls"):
        resilience.update(None, {"breaker": {"min_calls": 50}})
    assert resilience.config == before
    assert resilience.overrides == {}


def _api(
    metrics: ServiceMetrics, resilience: Resilience, handler: httpx2.MockTransport
) -> ExternalApi:
    return ExternalApi.from_settings(ExternalSettings(), metrics, handler, guard=resilience)


async def test_naive_retries_multiply_attempts(metrics: ServiceMetrics) -> None:
    sent = 0

    def failing(request: httpx2.Request) -> httpx2.Response:
        nonlocal sent
        sent += 1
        return httpx2.Response(503, json={"detail": "injected error"})

    api = _api(metrics, Resilience(metrics.resilience, "fragile"), httpx2.MockTransport(failing))
    with pytest.raises(ExternalError):
        await api.quote(1, 1)
    assert sent == 4
    assert _value(metrics, "brink_dependency_calls_total", target="external") == 1
    assert _value(metrics, "brink_dependency_attempts_total", target="external") == 4
    assert _value(metrics, "brink_external_requests_total", outcome="http_error") == 4


async def test_the_breaker_opens_and_then_refuses_without_calling(metrics: ServiceMetrics) -> None:
    sent = 0

    def failing(request: httpx2.Request) -> httpx2.Response:
        nonlocal sent
        sent += 1
        return httpx2.Response(503, json={"detail": "injected error"})

    overrides: dict[str, dict[str, Any]] = {
        "retry": {"policy": "none"},
        "breaker": {"min_calls": 3, "window": 3},
    }
    resilience = Resilience(metrics.resilience, "resilient", overrides)
    api = _api(metrics, resilience, httpx2.MockTransport(failing))
    for _ in range(3):
        with pytest.raises(ExternalError):
            await api.quote(1, 1)
    assert resilience.breaker.state is State.OPEN
    with pytest.raises(BreakerOpen):
        await api.quote(1, 1)
    assert sent == 3
    assert _value(metrics, "brink_breaker_state", target="external") == 2


async def test_each_attempt_gets_the_deadline(metrics: ServiceMetrics) -> None:
    async def hanging(request: httpx2.Request) -> httpx2.Response:
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    overrides: dict[str, dict[str, Any]] = {
        "retry": {"policy": "naive", "naive_attempts": 2},
        "deadlines": {"external_s": 0.01},
    }
    resilience = Resilience(metrics.resilience, "resilient", overrides)
    api = _api(metrics, resilience, httpx2.MockTransport(hanging))
    with pytest.raises(DeadlineExceeded) as caught:
        await api.quote(1, 1)
    assert caught.value.stage == "external"
    assert _value(metrics, "brink_deadline_exceeded_total", stage="external") == 2
    assert _value(metrics, "brink_external_requests_total", outcome="timeout") == 2
    assert _value(metrics, "brink_external_requests_in_flight") == 0


def _inside(resilience: Resilience) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return resilience.bulkhead.in_flight == 1

    return check


async def test_a_full_bulkhead_refuses_at_once(metrics: ServiceMetrics) -> None:
    release = asyncio.Event()

    async def slow(request: httpx2.Request) -> httpx2.Response:
        await release.wait()
        return httpx2.Response(200, json=QUOTE)

    overrides = {"bulkhead": {"limit": 1}, "deadlines": {"external_s": 0}}
    resilience = Resilience(metrics.resilience, "resilient", overrides)
    api = _api(metrics, resilience, httpx2.MockTransport(slow))
    first = asyncio.ensure_future(api.quote(1, 1))
    await eventually(_inside(resilience), what="the first call inside the bulkhead")
    with pytest.raises(BulkheadFull):
        await api.quote(2, 1)
    release.set()
    assert (await first).price_cents == 300
    assert _value(metrics, "brink_bulkhead_rejected_total", name="external") == 1
    assert resilience.bulkhead.in_flight == 0


def _presets(metrics: ServiceMetrics) -> dict[str, float | None]:
    return {
        name: _value(metrics, "brink_resilience_preset", preset=name)
        for name in ("fragile", "resilient", "adaptive")
    }


def test_the_preset_in_force_is_exported_and_follows_live_switches(
    metrics: ServiceMetrics,
) -> None:
    resilience = Resilience(metrics.resilience, "resilient", {"shedding": {"limit": 40}})
    assert _presets(metrics) == {"fragile": 0, "resilient": 1, "adaptive": 0}

    resilience.update("adaptive", {})
    assert _presets(metrics) == {"fragile": 0, "resilient": 0, "adaptive": 1}

    resilience.update(None, {"bulkhead": {"limit": 3}})  # knobs only: the preset stays
    assert _presets(metrics) == {"fragile": 0, "resilient": 0, "adaptive": 1}

    with pytest.raises(ValidationError):
        resilience.update("fragile", {"breaker": {"min_calls": 50}})  # refused: no change
    assert _presets(metrics) == {"fragile": 0, "resilient": 0, "adaptive": 1}

    resilience.reset()
    assert _presets(metrics) == {"fragile": 0, "resilient": 1, "adaptive": 0}


def test_every_resilience_counter_starts_at_zero(metrics: ServiceMetrics) -> None:
    """rate() only sees an increment after a first sample: each series must exist before it."""
    Resilience(metrics.resilience, "fragile")
    series = {
        ("brink_shed_total", (("reason", "in_flight_limit"),)),
        ("brink_shed_total", (("reason", "queue_time_limit"),)),
        ("brink_breaker_transitions_total", (("target", "external"), ("to", "open"))),
        ("brink_breaker_transitions_total", (("target", "external"), ("to", "half_open"))),
        ("brink_breaker_transitions_total", (("target", "external"), ("to", "closed"))),
        ("brink_breaker_rejected_total", (("target", "external"),)),
        ("brink_retries_total", (("policy", "naive"), ("target", "external"))),
        ("brink_retries_total", (("policy", "budgeted"), ("target", "db"))),
        ("brink_retry_budget_exhausted_total", (("target", "external"),)),
        ("brink_dependency_attempts_total", (("target", "db"),)),
        ("brink_dependency_calls_total", (("target", "external"),)),
        ("brink_deadline_exceeded_total", (("stage", "db_acquire"),)),
        ("brink_deadline_exceeded_total", (("stage", "db_statement"),)),
        ("brink_deadline_exceeded_total", (("stage", "external"),)),
    }
    for name, labels in series:
        assert _value(metrics, name, **dict(labels)) == 0, (name, labels)
