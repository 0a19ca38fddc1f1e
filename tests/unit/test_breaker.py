"""The circuit breaker's states, probes and metrics, on an injected clock (no sleeps)."""

from __future__ import annotations

import asyncio

import pytest
from prometheus_client import CollectorRegistry

from demo_service.metrics import ResilienceMetrics, ServiceMetrics
from demo_service.resilience.breaker import BreakerOpen, CircuitBreaker, State


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Boom(ConnectionError):
    pass


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


@pytest.fixture
def metrics(registry: CollectorRegistry) -> ResilienceMetrics:
    return ServiceMetrics(registry).resilience


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def make(metrics: ResilienceMetrics, clock: FakeClock, **kwargs: object) -> CircuitBreaker:
    options: dict[str, object] = {"window": 4, "min_calls": 4, "failure_ratio": 0.5}
    options |= {"cooldown_s": 10.0, "clock": clock} | kwargs
    return CircuitBreaker("api", metrics, **options)  # type: ignore[arg-type]


def sample(registry: CollectorRegistry, name: str, **labels: str) -> float:
    return registry.get_sample_value(name, {"target": "api", **labels}) or 0.0


def state(breaker: CircuitBreaker) -> State:
    return breaker.state  # read afresh each time (mypy would keep a narrowed ``breaker.state``)


async def ok() -> str:
    return "ok"


async def fail() -> str:
    raise Boom("down")


async def outcomes(breaker: CircuitBreaker, *calls: bool) -> None:
    """Run calls through the breaker: True succeeds, False fails."""
    for success in calls:
        if success:
            await breaker.call(ok)
        else:
            with pytest.raises(Boom):
                await breaker.call(fail)


async def trip(breaker: CircuitBreaker) -> None:
    await outcomes(breaker, False, False, False, False)
    assert state(breaker) is State.OPEN


async def test_opens_on_failure_ratio_once_the_window_has_enough_calls(
    metrics: ResilienceMetrics, clock: FakeClock, registry: CollectorRegistry
) -> None:
    breaker = make(metrics, clock)
    await outcomes(breaker, False, False, False)  # 3 of 3 failed, but fewer than min_calls
    assert state(breaker) is State.CLOSED
    await outcomes(breaker, True)  # 3 of 4 failed
    assert state(breaker) is State.OPEN
    assert sample(registry, "brink_breaker_state") == 2
    assert sample(registry, "brink_breaker_transitions_total", to="open") == 1


async def test_successes_keep_the_ratio_below_the_threshold(
    metrics: ResilienceMetrics, clock: FakeClock
) -> None:
    breaker = make(metrics, clock, failure_ratio=0.75)
    await outcomes(breaker, False, True, False, True, False, True, False, True)
    assert state(breaker) is State.CLOSED


async def test_open_rejects_fast_until_the_cooldown_ends(
    metrics: ResilienceMetrics, clock: FakeClock, registry: CollectorRegistry
) -> None:
    breaker = make(metrics, clock)
    await trip(breaker)
    called = False

    async def spy() -> None:
        nonlocal called
        called = True

    clock.now += 4
    with pytest.raises(BreakerOpen) as refused:
        await breaker.call(spy)
    assert not called
    assert refused.value.target == "api"
    assert refused.value.retry_after_s == pytest.approx(6)
    assert sample(registry, "brink_breaker_rejected_total") == 1
    clock.now += 6
    await breaker.call(spy)  # the probe
    assert called
    assert state(breaker) is State.CLOSED
    assert sample(registry, "brink_breaker_state") == 0
    assert sample(registry, "brink_breaker_transitions_total", to="half_open") == 1
    assert sample(registry, "brink_breaker_transitions_total", to="closed") == 1


async def test_half_open_lets_exactly_the_probes_through(
    metrics: ResilienceMetrics, clock: FakeClock, registry: CollectorRegistry
) -> None:
    breaker = make(metrics, clock, probes=2)
    await trip(breaker)
    clock.now += 10
    gate, both_in = asyncio.Event(), asyncio.Event()
    entered = 0

    async def held() -> str:
        nonlocal entered
        entered += 1
        if entered == 2:
            both_in.set()
        await gate.wait()
        return "probe"

    probes = [asyncio.create_task(breaker.call(held)) for _ in range(2)]
    await both_in.wait()
    assert state(breaker) is State.HALF_OPEN
    assert sample(registry, "brink_breaker_state") == 1
    for _ in range(5):  # the stampede: refused, and never reaches the dependency
        with pytest.raises(BreakerOpen):
            await breaker.call(ok)
    gate.set()
    assert await asyncio.gather(*probes) == ["probe", "probe"]
    assert state(breaker) is State.CLOSED
    assert sample(registry, "brink_breaker_rejected_total") == 5


async def test_a_failed_probe_reopens_for_another_cooldown(
    metrics: ResilienceMetrics, clock: FakeClock, registry: CollectorRegistry
) -> None:
    breaker = make(metrics, clock, probes=2)
    await trip(breaker)
    clock.now += 10
    await outcomes(breaker, True)  # one probe of two succeeded: still half-open
    assert state(breaker) is State.HALF_OPEN
    await outcomes(breaker, False)
    assert state(breaker) is State.OPEN
    assert sample(registry, "brink_breaker_transitions_total", to="open") == 2
    clock.now += 9
    with pytest.raises(BreakerOpen):
        await breaker.call(ok)
    clock.now += 1
    await outcomes(breaker, True, True)
    assert state(breaker) is State.CLOSED


async def test_a_cancelled_probe_hands_its_slot_back(
    metrics: ResilienceMetrics, clock: FakeClock
) -> None:
    breaker = make(metrics, clock)
    await trip(breaker)
    clock.now += 10
    entered = asyncio.Event()

    async def hang() -> None:
        entered.set()
        await asyncio.Event().wait()

    probe = asyncio.create_task(breaker.call(hang))
    await entered.wait()
    with pytest.raises(BreakerOpen):
        await breaker.call(ok)
    probe.cancel()
    with pytest.raises(asyncio.CancelledError):
        await probe
    assert state(breaker) is State.HALF_OPEN
    assert await breaker.call(ok) == "ok"
    assert state(breaker) is State.CLOSED


async def test_only_the_configured_exceptions_are_failures(
    metrics: ResilienceMetrics, clock: FakeClock
) -> None:
    breaker = make(metrics, clock, failures=(TimeoutError,))
    for _ in range(8):
        with pytest.raises(Boom):  # not a failure: the dependency answered
            await breaker.call(fail)
    assert state(breaker) is State.CLOSED

    def server_error(exc: BaseException) -> bool:
        return isinstance(exc, Boom) and "5xx" in str(exc)

    breaker = make(metrics, clock, failures=server_error)
    for _ in range(4):
        with pytest.raises(Boom):
            async with breaker:
                raise Boom("5xx")
    assert state(breaker) is State.OPEN


async def test_calls_begun_before_a_transition_do_not_count(
    metrics: ResilienceMetrics, clock: FakeClock
) -> None:
    breaker = make(metrics, clock)
    gate = asyncio.Event()
    entered = asyncio.Event()

    async def slow() -> str:
        entered.set()
        await gate.wait()
        return "late"

    straggler = asyncio.create_task(breaker.call(slow))  # admitted while closed
    await entered.wait()
    await trip(breaker)
    clock.now += 10
    probe_gate, probing = asyncio.Event(), asyncio.Event()

    async def probe_call() -> None:
        probing.set()
        await probe_gate.wait()

    probe = asyncio.create_task(breaker.call(probe_call))
    await probing.wait()
    assert state(breaker) is State.HALF_OPEN
    gate.set()
    assert await straggler == "late"  # its success must not close the half-open breaker
    assert state(breaker) is State.HALF_OPEN
    probe_gate.set()
    await probe
    assert state(breaker) is State.CLOSED


async def test_disabled_passes_everything_and_reenabling_starts_closed(
    metrics: ResilienceMetrics, clock: FakeClock, registry: CollectorRegistry
) -> None:
    breaker = make(metrics, clock, enabled=False)
    await outcomes(breaker, *[False] * 10)
    assert state(breaker) is State.CLOSED
    breaker.enabled = True
    await trip(breaker)
    breaker.enabled = False
    assert state(breaker) is State.CLOSED
    assert await breaker.call(ok) == "ok"
    assert sample(registry, "brink_breaker_state") == 0


async def test_nested_use_in_one_task_keeps_each_call_apart(
    metrics: ResilienceMetrics, clock: FakeClock
) -> None:
    breaker = make(metrics, clock)
    for round_ in range(2):
        async with breaker:  # succeeds
            with pytest.raises(Boom):
                async with breaker:  # fails
                    raise Boom("inner")
        # Round 1: 1 of 2 calls failed (fewer than min_calls); round 2: 2 of 4, the threshold.
        assert state(breaker) is (State.CLOSED if round_ == 0 else State.OPEN)


def test_bad_settings_are_refused(metrics: ResilienceMetrics, clock: FakeClock) -> None:
    for bad in ({"failure_ratio": 0}, {"min_calls": 5}, {"probes": 0}, {"cooldown_s": -1}):
        with pytest.raises(ValueError, match=r"must|need"):
            make(metrics, clock, **bad)
