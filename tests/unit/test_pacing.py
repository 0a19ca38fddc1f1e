"""Open-model pacing with a fake clock: rates, random phases, catching up, dropping."""

from __future__ import annotations

import random

import pytest

from loadtests.pacing import MAX_LAG_S, dispatch, error_kind
from loadtests.series import Series


class _Done(Exception):
    pass


class FakeEngine:
    def __init__(self, rate: float, clock: FakeClock) -> None:
        self.rate_per_dispatcher = rate
        self.series = Series(slo_s=1.0)
        self.clock = clock
        self.arrivals: list[float] = []

    def arrive(self) -> None:
        self.arrivals.append(self.clock.now)


class FakeClock:
    def __init__(self, start: float, end: float) -> None:
        self.now = start
        self.end = end

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds
        if self.now > self.end:
            raise _Done


def _run(engine: FakeEngine, clock: FakeClock, seed: int = 0) -> None:
    with pytest.raises(_Done):
        dispatch(engine, random.Random(seed), clock, clock.sleep)


def test_arrivals_follow_the_rate() -> None:
    clock = FakeClock(1000.0, 1100.0)
    engine = FakeEngine(50.0, clock)
    _run(engine, clock)
    assert len(engine.arrivals) == pytest.approx(5_000, rel=0.05)


def test_dispatchers_started_together_do_not_fire_in_lockstep() -> None:
    firsts = []
    for seed in range(20):
        clock = FakeClock(0.0, 1.0)
        engine = FakeEngine(10.0, clock)
        _run(engine, clock, seed)
        firsts.append(engine.arrivals[0])
    assert len({round(first, 6) for first in firsts}) == 20


def test_a_late_dispatcher_catches_up_then_drops_what_it_cannot() -> None:
    clock = FakeClock(0.0, 10.0)
    engine = FakeEngine(100.0, clock)
    real_sleep = clock.sleep
    stalled = False

    def stalling_sleep(seconds: float) -> None:
        nonlocal stalled
        if not stalled and clock.now > 2.0:
            stalled = True
            clock.now += 3.0  # the process froze for 3 s (a GC pause, a stopped VM)
        real_sleep(seconds)

    with pytest.raises(_Done):
        dispatch(engine, random.Random(1), clock, stalling_sleep)
    dropped = sum(second.dropped for second in engine.series.seconds.values())
    assert dropped > (3.0 - MAX_LAG_S) * 100 * 0.5
    assert len(engine.arrivals) + dropped == pytest.approx(1_000, rel=0.1)


def test_zero_rate_sends_nothing() -> None:
    clock = FakeClock(0.0, 5.0)
    engine = FakeEngine(0.0, clock)
    _run(engine, clock)
    assert engine.arrivals == []


class RetriesExceeded(Exception):
    def __init__(self, original: BaseException) -> None:
        super().__init__("retries exceeded")
        self.original = original


@pytest.mark.parametrize(
    ("status", "error", "kind"),
    [
        (200, None, None),
        (201, None, None),
        (503, None, "http_503"),
        (404, None, "http_404"),
        (0, RetriesExceeded(TimeoutError("timed out")), "timeout"),
        (0, TimeoutError(), "timeout"),
        (0, ConnectionRefusedError(), "connection"),
        (0, RetriesExceeded(ConnectionResetError()), "connection"),
        (0, ValueError("odd"), "client_error"),
    ],
)
def test_error_kinds(status: int, error: BaseException | None, kind: str | None) -> None:
    assert error_kind(status, error) == kind


def test_even_arrivals_offer_the_rate_exactly() -> None:
    clock = FakeClock(1000.0, 1100.0)
    engine = FakeEngine(50.0, clock)
    with pytest.raises(_Done):
        dispatch(engine, random.Random(3), clock, clock.sleep, arrivals="even")
    assert len(engine.arrivals) == pytest.approx(5_000, abs=2)
    gaps = {round(b - a, 9) for a, b in zip(engine.arrivals[1:], engine.arrivals[2:], strict=False)}
    assert gaps == {0.02}


def test_unknown_arrivals_are_refused() -> None:
    clock = FakeClock(0.0, 1.0)
    with pytest.raises(ValueError, match="poisson"):
        dispatch(FakeEngine(1.0, clock), random.Random(), clock, clock.sleep, arrivals="bursty")
