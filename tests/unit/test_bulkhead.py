"""The bulkhead: limits, waiting, rejection, live resize, and no leaked slot on cancellation.

Tasks are driven by events and loop turns (``asyncio.sleep(0)``), never by sleeping; the one
timed wait is a tiny ``max_wait_s`` against a slot that is never freed.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable

import pytest
from prometheus_client import CollectorRegistry

from demo_service.metrics import ResilienceMetrics, ServiceMetrics
from demo_service.resilience.bulkhead import Bulkhead, BulkheadFull

NAME = "external"


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


@pytest.fixture
def metrics(registry: CollectorRegistry) -> ResilienceMetrics:
    return ServiceMetrics(registry).resilience


def gauge(registry: CollectorRegistry, metric: str) -> float | None:
    return registry.get_sample_value(f"brink_bulkhead_{metric}", {"name": NAME})


async def until(condition: Callable[[], bool], turns: int = 100) -> None:
    """Let other tasks run until ``condition`` holds (a bounded number of loop turns)."""
    for _ in range(turns):
        if condition():
            return
        await asyncio.sleep(0)
    raise AssertionError("condition never held")


class Holder:
    """A task inside the bulkhead until released."""

    def __init__(self, bulkhead: Bulkhead) -> None:
        self.entered = asyncio.Event()
        self.release = asyncio.Event()
        self.task = asyncio.create_task(self._run(bulkhead))

    async def _run(self, bulkhead: Bulkhead) -> None:
        async with bulkhead:
            self.entered.set()
            await self.release.wait()


async def test_admits_up_to_the_limit_then_rejects_at_once(registry, metrics) -> None:
    bulkhead = Bulkhead(NAME, limit=2, max_wait_s=0, metrics=metrics)
    holders = [Holder(bulkhead), Holder(bulkhead)]
    await until(lambda: bulkhead.in_flight == 2)
    with pytest.raises(BulkheadFull) as caught:
        async with bulkhead:
            pass  # pragma: no cover
    assert (caught.value.name, caught.value.limit, caught.value.max_wait_s) == (NAME, 2, 0)
    assert gauge(registry, "in_flight") == 2
    assert gauge(registry, "limit") == 2
    assert gauge(registry, "rejected_total") == 1
    for holder in holders:
        holder.release.set()
    await asyncio.gather(*(holder.task for holder in holders))
    assert bulkhead.in_flight == 0
    assert gauge(registry, "in_flight") == 0


async def test_off_admits_everyone(registry, metrics) -> None:
    bulkhead = Bulkhead(NAME, limit=None, max_wait_s=0, metrics=metrics)
    holders = [Holder(bulkhead) for _ in range(200)]
    await until(lambda: bulkhead.in_flight == 200)
    assert gauge(registry, "limit") == 0
    assert gauge(registry, "rejected_total") == 0
    for holder in holders:
        holder.release.set()
    await asyncio.gather(*(holder.task for holder in holders))
    assert bulkhead.in_flight == 0


async def test_waiters_are_admitted_in_order_as_slots_free(metrics) -> None:
    bulkhead = Bulkhead(NAME, limit=1, max_wait_s=60, metrics=metrics)
    first = Holder(bulkhead)
    await first.entered.wait()
    waiters = [Holder(bulkhead) for _ in range(3)]
    await until(lambda: bulkhead.waiting == 3)
    for previous, holder in zip([first, *waiters], waiters, strict=False):
        assert not holder.entered.is_set()
        previous.release.set()
        await holder.entered.wait()
        assert [w.entered.is_set() for w in waiters].count(True) == waiters.index(holder) + 1
        assert bulkhead.in_flight == 1
    waiters[-1].release.set()
    await asyncio.gather(first.task, *(w.task for w in waiters))
    assert (bulkhead.in_flight, bulkhead.waiting) == (0, 0)


async def test_a_newcomer_queues_behind_the_waiters(metrics) -> None:
    bulkhead = Bulkhead(NAME, limit=1, max_wait_s=60, metrics=metrics)
    await bulkhead.__aenter__()
    waiter = Holder(bulkhead)
    await until(lambda: bulkhead.waiting == 1)
    await bulkhead.__aexit__(None, None, None)  # the slot is handed to the waiter...
    newcomer = Holder(bulkhead)  # ...so a newcomer arriving now must wait
    await waiter.entered.wait()
    await until(lambda: bulkhead.waiting == 1)
    assert not newcomer.entered.is_set()
    waiter.release.set()
    await newcomer.entered.wait()
    newcomer.release.set()
    await asyncio.gather(waiter.task, newcomer.task)
    assert bulkhead.in_flight == 0


async def test_a_full_bulkhead_rejects_after_max_wait(registry, metrics) -> None:
    bulkhead = Bulkhead(NAME, limit=1, max_wait_s=0.001, metrics=metrics)
    holder = Holder(bulkhead)
    await holder.entered.wait()
    with pytest.raises(BulkheadFull) as caught:
        async with bulkhead:
            pass  # pragma: no cover
    assert caught.value.__suppress_context__  # the internal TimeoutError is not the story
    assert (bulkhead.in_flight, bulkhead.waiting) == (1, 0)
    assert gauge(registry, "rejected_total") == 1
    holder.release.set()
    await holder.task
    async with bulkhead:
        assert bulkhead.in_flight == 1


async def test_a_cancelled_waiter_leaks_no_slot(registry, metrics) -> None:
    bulkhead = Bulkhead(NAME, limit=1, max_wait_s=60, metrics=metrics)
    holder = Holder(bulkhead)
    await holder.entered.wait()
    waiter = Holder(bulkhead)
    await until(lambda: bulkhead.waiting == 1)
    waiter.task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter.task
    assert (bulkhead.in_flight, bulkhead.waiting) == (1, 0)
    holder.release.set()
    await holder.task
    assert bulkhead.in_flight == 0
    assert gauge(registry, "rejected_total") == 0  # a cancellation is not a rejection
    async with bulkhead:  # the slot is free for the next caller
        assert bulkhead.in_flight == 1


async def test_a_waiter_cancelled_just_after_being_handed_a_slot_passes_it_on(metrics) -> None:
    bulkhead = Bulkhead(NAME, limit=1, max_wait_s=60, metrics=metrics)
    await bulkhead.__aenter__()  # we hold the only slot
    doomed, next_in_line = Holder(bulkhead), Holder(bulkhead)
    await until(lambda: bulkhead.waiting == 2)
    await bulkhead.__aexit__(None, None, None)  # hands the slot to `doomed` (no await inside)...
    doomed.task.cancel()  # ...which is cancelled before it could run
    with pytest.raises(asyncio.CancelledError):
        await doomed.task
    assert not doomed.entered.is_set()
    await until(next_in_line.entered.is_set)  # the slot went on to the next waiter
    assert (bulkhead.in_flight, bulkhead.waiting) == (1, 0)
    next_in_line.release.set()
    await next_in_line.task
    assert bulkhead.in_flight == 0


async def test_a_slot_freed_while_a_cancelled_waiter_unwinds_skips_it(metrics) -> None:
    bulkhead = Bulkhead(NAME, limit=1, max_wait_s=60, metrics=metrics)
    await bulkhead.__aenter__()
    doomed, next_in_line = Holder(bulkhead), Holder(bulkhead)
    await until(lambda: bulkhead.waiting == 2)
    doomed.task.cancel()  # its wait is cancelled, but it has not run its clean-up yet...
    await bulkhead.__aexit__(None, None, None)  # ...when the slot is freed
    with pytest.raises(asyncio.CancelledError):
        await doomed.task
    await until(next_in_line.entered.is_set)
    assert (bulkhead.in_flight, bulkhead.waiting) == (1, 0)
    next_in_line.release.set()
    await next_in_line.task
    assert bulkhead.in_flight == 0


async def test_an_error_inside_frees_the_slot(metrics) -> None:
    bulkhead = Bulkhead(NAME, limit=1, max_wait_s=0, metrics=metrics)
    with pytest.raises(ValueError, match="bug"):
        async with bulkhead:
            raise ValueError("bug")
    assert bulkhead.in_flight == 0


async def test_growing_admits_waiters_at_once(registry, metrics) -> None:
    bulkhead = Bulkhead(NAME, limit=1, max_wait_s=60, metrics=metrics)
    holders = [Holder(bulkhead) for _ in range(4)]
    await until(lambda: bulkhead.waiting == 3)
    bulkhead.resize(3)
    await until(lambda: sum(h.entered.is_set() for h in holders) == 3)
    assert (bulkhead.in_flight, bulkhead.waiting, gauge(registry, "limit")) == (3, 1, 3)
    bulkhead.resize(None)
    await until(lambda: all(h.entered.is_set() for h in holders))
    assert (bulkhead.in_flight, bulkhead.waiting, gauge(registry, "limit")) == (4, 0, 0)
    for holder in holders:
        holder.release.set()
    await asyncio.gather(*(holder.task for holder in holders))
    assert bulkhead.in_flight == 0


async def test_shrinking_lets_calls_finish_and_admits_below_the_new_limit(metrics) -> None:
    bulkhead = Bulkhead(NAME, limit=3, max_wait_s=60, metrics=metrics)
    inside = [Holder(bulkhead) for _ in range(3)]
    await until(lambda: bulkhead.in_flight == 3)
    bulkhead.resize(1)
    waiter = Holder(bulkhead)
    await until(lambda: bulkhead.waiting == 1)
    for holder in inside[:2]:
        holder.release.set()
        await holder.task
        await asyncio.sleep(0)
        assert not waiter.entered.is_set()  # 2, then 1 inside: not below the limit of 1
    inside[2].release.set()
    await inside[2].task
    await waiter.entered.wait()
    assert bulkhead.in_flight == 1
    waiter.release.set()
    await waiter.task
    assert bulkhead.in_flight == 0


async def test_never_over_the_limit_and_nothing_leaks_under_churn(metrics) -> None:
    """300 callers, random cancellations and live resizes: the limit holds, nothing leaks."""
    rng = random.Random(7)
    bulkhead = Bulkhead(NAME, limit=4, max_wait_s=60, metrics=metrics)

    async def caller() -> None:
        async with bulkhead:
            for _ in range(rng.randint(0, 5)):
                await asyncio.sleep(0)

    tasks = [asyncio.create_task(caller()) for _ in range(300)]
    for turn in range(300):
        await asyncio.sleep(0)
        if turn % 7 == 0:
            rng.choice(tasks).cancel()
        if turn == 50:
            bulkhead.resize(2)
        if turn == 120:
            bulkhead.resize(6)
        # After a shrink, calls already inside finish within a few turns (≤ 5 each).
        ceiling = 4 if turn < 50 else 2 if 60 <= turn < 120 else 6 if turn >= 120 else 4
        assert bulkhead.in_flight <= ceiling, turn
    results = await asyncio.gather(*tasks, return_exceptions=True)
    assert sum(isinstance(r, asyncio.CancelledError) for r in results) > 10
    assert sum(r is None for r in results) > 100
    assert (bulkhead.in_flight, bulkhead.waiting) == (0, 0)


def test_refuses_bad_values(metrics) -> None:
    with pytest.raises(ValueError, match="limit"):
        Bulkhead(NAME, limit=0, max_wait_s=0, metrics=metrics)
    with pytest.raises(ValueError, match="max_wait_s"):
        Bulkhead(NAME, limit=1, max_wait_s=-1, metrics=metrics)
    bulkhead = Bulkhead(NAME, limit=1, max_wait_s=0, metrics=metrics)
    with pytest.raises(ValueError, match="limit"):
        bulkhead.resize(-3)
    assert bulkhead.limit == 1
