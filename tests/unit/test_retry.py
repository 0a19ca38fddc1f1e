"""Retry policies: attempts, backoff, the budget and the amplification each one causes.

No test sleeps: backoff goes through an injected sleep that only records, the budget through an
injected clock.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import asyncpg
import httpx2
import pytest
from prometheus_client import CollectorRegistry

from demo_service.db import PoolExhausted
from demo_service.external import ExternalApi, ExternalError
from demo_service.metrics import ResilienceMetrics, ServiceMetrics
from demo_service.resilience.deadlines import DeadlineExceeded
from demo_service.resilience.retry import (
    BudgetedRetry,
    NaiveRetry,
    NoRetry,
    RetryBudget,
    RetryPolicy,
    transient_db,
    transient_external,
)
from demo_service.settings import ExternalSettings

TARGET = "external"


class Transient(Exception):
    pass


class Permanent(Exception):
    pass


def is_transient(exc: Exception) -> bool:
    return isinstance(exc, Transient)


class Clock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


class RecordingSleep:
    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


@pytest.fixture
def metrics(registry: CollectorRegistry) -> ResilienceMetrics:
    return ServiceMetrics(registry).resilience


def sample(registry: CollectorRegistry, name: str, **labels: str) -> float:
    return registry.get_sample_value(name, labels) or 0.0


def counts(registry: CollectorRegistry, target: str = TARGET) -> tuple[float, float]:
    return (
        sample(registry, "brink_dependency_calls_total", target=target),
        sample(registry, "brink_dependency_attempts_total", target=target),
    )


def failing(times: int, exc: Exception | None = None) -> Callable[[], Awaitable[str]]:
    """Fails ``times`` times with ``exc`` (a Transient by default), then answers "ok"."""
    state = {"left": times}

    async def fn() -> str:
        if state["left"] > 0:
            state["left"] -= 1
            raise exc or Transient("boom")
        return "ok"

    return fn


def budgeted(
    metrics: ResilienceMetrics, clock: Clock, sleep: RecordingSleep, ratio: float, min_retries: int
) -> BudgetedRetry:
    def budget() -> RetryBudget:
        return RetryBudget(ratio=ratio, min_retries=min_retries, clock=clock)

    return BudgetedRetry(metrics, budget=budget, sleep=sleep)


async def test_no_retry_makes_one_attempt(registry, metrics) -> None:
    with pytest.raises(Transient):
        await NoRetry(metrics).call(TARGET, failing(1), is_transient)
    assert counts(registry) == (1, 1)
    assert sample(registry, "brink_retries_total", target=TARGET, policy="none") == 0


async def test_naive_retries_immediately_then_gives_up(registry, metrics) -> None:
    policy = NaiveRetry(metrics, attempts=4)
    assert await policy.call(TARGET, failing(3), is_transient) == "ok"
    with pytest.raises(Transient):
        await policy.call(TARGET, failing(10), is_transient)
    assert counts(registry) == (2, 8)
    assert sample(registry, "brink_retries_total", target=TARGET, policy="naive") == 6


@pytest.mark.parametrize(
    "policy_of",
    [lambda m: NaiveRetry(m, 4), lambda m: BudgetedRetry(m, sleep=RecordingSleep())],
)
async def test_only_what_the_predicate_accepts_is_retried(registry, metrics, policy_of) -> None:
    seen: list[Exception] = []

    def predicate(exc: Exception) -> bool:
        seen.append(exc)
        return is_transient(exc)

    with pytest.raises(Permanent):
        await policy_of(metrics).call(TARGET, failing(5, Permanent("404")), predicate)
    assert counts(registry) == (1, 1)
    assert [type(exc) for exc in seen] == [Permanent]


async def test_cancellation_is_never_retried(registry, metrics) -> None:
    asked: list[Exception] = []

    def anything(exc: Exception) -> bool:
        asked.append(exc)
        return True

    async def cancelled() -> str:
        raise asyncio.CancelledError

    with pytest.raises(asyncio.CancelledError):
        await NaiveRetry(metrics, 4).call(TARGET, cancelled, anything)
    assert counts(registry) == (1, 1)
    assert asked == []


async def test_a_cancelled_backoff_ends_the_call(registry, metrics) -> None:
    in_backoff = asyncio.Event()

    async def hang(_: float) -> None:
        in_backoff.set()
        await asyncio.Event().wait()

    policy = BudgetedRetry(metrics, sleep=hang)
    task = asyncio.create_task(policy.call(TARGET, failing(5), is_transient))
    await in_backoff.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert counts(registry) == (1, 1)
    assert sample(registry, "brink_retries_total", target=TARGET, policy="budgeted") == 0


async def test_budgeted_backs_off_exponentially_with_full_jitter(registry, metrics) -> None:
    sleep = RecordingSleep()
    policy = BudgetedRetry(
        metrics, attempts=3, base_delay_s=0.05, max_delay_s=0.08, sleep=sleep, jitter=lambda: 1.0
    )
    with pytest.raises(Transient):
        await policy.call(TARGET, failing(10), is_transient)
    assert sleep.delays == pytest.approx([0.05, 0.08])  # 0.05, then 0.10 capped at 0.08
    assert counts(registry) == (1, 3)
    assert sample(registry, "brink_retries_total", target=TARGET, policy="budgeted") == 2

    half = BudgetedRetry(metrics, base_delay_s=0.1, max_delay_s=5, jitter=lambda: 0.5)
    assert [half.delay(n) for n in (1, 2, 3, 4)] == pytest.approx([0.05, 0.1, 0.2, 0.4])
    real = BudgetedRetry(metrics, base_delay_s=0.1, max_delay_s=0.3)
    delays = [real.delay(3) for _ in range(200)]
    assert all(0 <= d < 0.3 for d in delays)
    assert max(delays) - min(delays) > 0.1  # spread over the range, not a fixed wait


def test_budget_allows_a_ratio_of_recent_calls_plus_a_floor() -> None:
    clock = Clock()
    budget = RetryBudget(ratio=0.1, window_s=10, min_retries=2, clock=clock)
    assert [budget.try_spend() for _ in range(3)] == [True, True, False]  # the floor alone
    for _ in range(20):
        budget.record_call()
    assert [budget.try_spend() for _ in range(3)] == [True, True, False]  # + 10% of 20 calls


def test_budget_window_slides() -> None:
    clock = Clock()
    budget = RetryBudget(ratio=0.5, window_s=10, min_retries=0, clock=clock)
    for _ in range(4):
        budget.record_call()
    assert budget.try_spend()
    clock.now += 6
    assert budget.try_spend()  # the calls 6 s ago still count
    assert not budget.try_spend()
    clock.now += 5
    assert not budget.try_spend()  # 11 s later, the first 4 calls have aged out
    for _ in range(4):
        budget.record_call()
    assert budget.try_spend()  # 4 new calls pay for 2 retries; the one 5 s ago still counts
    assert not budget.try_spend()


def test_budget_refuses_bad_values() -> None:
    with pytest.raises(ValueError, match="ratio"):
        RetryBudget(ratio=1.5)
    with pytest.raises(ValueError, match="attempts"):
        NaiveRetry(ServiceMetrics(CollectorRegistry()).resilience, attempts=0)


async def test_a_spent_budget_fails_fast_and_counts(registry, metrics) -> None:
    sleep = RecordingSleep()
    policy = budgeted(metrics, Clock(), sleep, ratio=0.0, min_retries=1)
    with pytest.raises(Transient):
        await policy.call(TARGET, failing(10), is_transient)  # spends the one retry, then refused
    with pytest.raises(Transient):
        await policy.call(TARGET, failing(10), is_transient)  # refused at once: no backoff
    assert counts(registry) == (2, 3)
    assert len(sleep.delays) == 1
    assert sample(registry, "brink_retry_budget_exhausted_total", target=TARGET) == 2


async def test_each_target_has_its_own_budget(registry, metrics) -> None:
    policy = budgeted(metrics, Clock(), RecordingSleep(), ratio=0.0, min_retries=1)
    for target in ("external", "db"):
        with pytest.raises(Transient):
            await policy.call(target, failing(10), is_transient)
    assert counts(registry, "external") == (1, 2)
    assert counts(registry, "db") == (1, 2)
    assert policy.budget("external") is not policy.budget("db")


async def amplification(policy: RetryPolicy, registry: CollectorRegistry, clock: Clock) -> float:
    """1,000 calls at 100 per second to a dependency that always fails: attempts per call."""
    for _ in range(1_000):
        with pytest.raises(Transient):
            await policy.call(TARGET, failing(1_000), is_transient)
        clock.now += 0.01
    calls, attempts = counts(registry)
    assert calls == 1_000
    return attempts / calls


async def test_naive_multiplies_attempts_while_budgeted_stays_near_one(metrics, registry) -> None:
    clock = Clock()
    assert await amplification(NaiveRetry(metrics, 4), registry, clock) == 4.0  # 1 + 3 retries

    registry = CollectorRegistry()
    metrics = ServiceMetrics(registry).resilience
    policy = BudgetedRetry(metrics, budget=lambda: RetryBudget(clock=clock), sleep=RecordingSleep())
    ratio = await amplification(policy, registry, clock)
    assert 1.05 < ratio <= 1.2  # it does retry, within ~10% of the calls
    assert sample(registry, "brink_retry_budget_exhausted_total", target=TARGET) > 800


async def test_budgeted_recovers_a_transient_failure(registry, metrics) -> None:
    policy = BudgetedRetry(metrics, sleep=RecordingSleep())
    assert await policy.call(TARGET, failing(2), is_transient) == "ok"
    assert counts(registry) == (1, 3)


async def external_error(response_or_error: httpx2.Response | Exception) -> ExternalError:
    """The ExternalError the real client raises for this answer (no network)."""

    def handler(request: httpx2.Request) -> httpx2.Response:
        if isinstance(response_or_error, Exception):
            raise response_or_error
        return response_or_error

    metrics = ServiceMetrics(CollectorRegistry())
    api = ExternalApi.from_settings(ExternalSettings(), metrics, httpx2.MockTransport(handler))
    with pytest.raises(ExternalError) as caught:
        await api.quote(1, 1)
    return caught.value


@pytest.mark.parametrize(
    ("response_or_error", "retryable"),
    [
        (httpx2.Response(503), True),
        (httpx2.Response(500), True),
        (httpx2.Response(404), False),
        (httpx2.Response(429), False),
        (httpx2.Response(200, json={"unexpected": True}), False),
        (httpx2.ReadTimeout("slow"), True),
        (httpx2.ConnectError("refused"), True),
        (httpx2.PoolTimeout("full"), False),
    ],
)
async def test_transient_external(response_or_error, retryable: bool) -> None:
    assert transient_external(await external_error(response_or_error)) is retryable


def test_transient_external_deadlines_and_others() -> None:
    assert transient_external(DeadlineExceeded("external", 0.5))
    assert not transient_external(DeadlineExceeded("db_statement", 0.5))
    assert not transient_external(ValueError("bug"))


@pytest.mark.parametrize(
    ("exc", "retryable"),
    [
        (ConnectionResetError(), True),
        (asyncpg.ConnectionDoesNotExistError("gone"), True),
        (asyncpg.CannotConnectNowError("starting up"), True),
        (asyncpg.SerializationError("could not serialize"), True),
        (asyncpg.DeadlockDetectedError("deadlock"), True),
        (asyncpg.UniqueViolationError("duplicate"), False),
        (PoolExhausted(2.0), False),
        (DeadlineExceeded("db_statement", 1.0), False),
        (DeadlineExceeded("db_acquire", 1.0), False),
    ],
)
def test_transient_db(exc: Exception, retryable: bool) -> None:
    assert transient_db(exc) is retryable
