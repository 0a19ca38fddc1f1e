"""The AIMD limiter on synthetic latency curves, driven by an injected clock (no sleeps)."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import FrozenInstanceError

import pytest

from demo_service.resilience.adaptive import AimdConfig, AimdLimiter, AimdState, aimd_update
from demo_service.resilience.shedding import Limiter

CONFIG = AimdConfig(initial_limit=20, min_limit=2, max_limit=200, target_latency_s=0.1)


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def drive(
    limiter: AimdLimiter,
    clock: FakeClock,
    seconds: float,
    latency: Callable[[int], float],
    ok: bool = True,
) -> list[tuple[float, int]]:
    """Feed a saturated service for ``seconds``: in flight is always the whole limit, so by
    Little's law requests finish at ``limit / latency`` per second. Returns (elapsed, limit)."""
    start, series = clock.now, []
    while clock.now - start < seconds:
        in_flight = limiter.limit
        seconds_each = latency(in_flight)
        clock.now += seconds_each / in_flight
        series.append((clock.now - start, limiter.on_sample(seconds_each, ok, in_flight)))
    return series


def at(series: list[tuple[float, int]], elapsed: float) -> int:
    """The limit after ``elapsed`` seconds of a series."""
    return next(limit for t, limit in series if t >= elapsed)


def limits(series: list[tuple[float, int]]) -> list[int]:
    return [limit for _, limit in series]


def healthy(_: int) -> float:
    return 0.02


def slow(_: int) -> float:
    return 0.5


def little(in_flight: int) -> float:
    """A backend of capacity 50 concurrent requests at 50 ms: past that, requests queue."""
    return 0.05 * max(1.0, in_flight / 50)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def test_it_is_a_limiter() -> None:
    limiter: Limiter = AimdLimiter(CONFIG)
    assert limiter.limit == 20


def test_grows_under_a_healthy_backend_up_to_the_maximum(clock: FakeClock) -> None:
    limiter = AimdLimiter(CONFIG, clock=clock)
    series = drive(limiter, clock, 2, healthy)
    assert limits(series) == sorted(limits(series))  # never goes down
    assert 40 < at(series, 1.0) < 80  # about one more per round trip of 20 ms
    series = drive(limiter, clock, 10, healthy)
    assert at(series, 3) == 200
    assert max(limits(series)) == limiter.limit == 200


def test_drops_fast_when_latency_exceeds_the_target_and_recovers(clock: FakeClock) -> None:
    limiter = AimdLimiter(CONFIG, clock=clock)
    drive(limiter, clock, 10, healthy)
    assert limiter.limit == 200
    spike = drive(limiter, clock, 4, slow)
    assert at(spike, 0.01) < 200  # the first cut as soon as the smoothed latency is over
    assert at(spike, 1.0) <= 200 * 0.7**4
    assert limiter.limit == CONFIG.min_limit
    recovery = drive(limiter, clock, 10, healthy)
    assert at(recovery, 1.0) > 30
    assert limiter.limit == 200


def test_errors_cut_the_limit_even_when_fast(clock: FakeClock) -> None:
    limiter = AimdLimiter(CONFIG, clock=clock)
    drive(limiter, clock, 10, healthy)
    series = drive(limiter, clock, 0.5, healthy, ok=False)
    assert series[0][1] == 140
    assert series[-1][1] < 100
    # Fast errors stayed out of the smoothed latency: it still says healthy.
    assert limiter.state.smoothed_latency_s == pytest.approx(0.02)


def test_cuts_at_most_once_per_interval(clock: FakeClock) -> None:
    state = AimdState(limit=100.0)
    cut = aimd_update(CONFIG, state, 0.02, False, 100, now=10.0)
    assert cut.limit == 70.0
    again = aimd_update(CONFIG, cut, 0.02, False, 100, now=10.2)
    assert again.limit == 70.0
    later = aimd_update(CONFIG, again, 0.02, False, 100, now=10.25)
    assert later.limit == pytest.approx(49.0)


def test_settles_near_the_knee_of_a_queueing_backend(clock: FakeClock) -> None:
    """Latency reaches the 100 ms target at 100 in flight: the limit saws just below it."""
    limiter = AimdLimiter(CONFIG, clock=clock)
    series = drive(limiter, clock, 60, little)
    tail = [limit for t, limit in series if t > 30]
    assert min(tail) >= 60
    assert max(tail) <= 110
    assert max(tail) - min(tail) > 5  # it keeps probing for more


def test_an_idle_service_earns_no_limit(clock: FakeClock) -> None:
    limiter = AimdLimiter(CONFIG, clock=clock)
    for _ in range(10_000):
        clock.now += 0.01
        limiter.on_sample(0.02, True, in_flight=3)
    assert limiter.limit == 20


def test_stays_within_bounds_on_a_noisy_curve(clock: FakeClock) -> None:
    rng = random.Random(7)
    config = AimdConfig(initial_limit=10, min_limit=5, max_limit=40, target_latency_s=0.1)
    limiter = AimdLimiter(config, clock=clock)
    seen = set()
    for step in range(50_000):
        clock.now += rng.expovariate(500)
        phase_slow = (step // 5_000) % 2 == 1
        latency = rng.lognormvariate(-1 if phase_slow else -4, 1)
        ok = rng.random() > (0.2 if phase_slow else 0.001)
        seen.add(limiter.on_sample(latency, ok, rng.randint(0, 2 * limiter.limit)))
    assert min(seen) == 5
    assert max(seen) == 40


def test_the_update_is_pure() -> None:
    state = AimdState(limit=50.0)
    after = aimd_update(CONFIG, state, 0.5, True, 50, now=1.0)
    assert state == AimdState(limit=50.0)
    assert after == AimdState(limit=35.0, smoothed_latency_s=0.5, last_decrease_at=1.0)
    with pytest.raises(FrozenInstanceError):
        after.limit = 1.0  # type: ignore[misc]


@pytest.mark.parametrize(
    "bad",
    [
        {"min_limit": 0},
        {"initial_limit": 500},
        {"backoff_ratio": 1.0},
        {"smoothing": 0.0},
        {"target_latency_s": 0.0},
        {"decrease_interval_s": -1.0},
    ],
)
def test_bad_configs_are_refused(bad: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="bad AIMD config"):
        AimdConfig(**bad)  # type: ignore[arg-type]
