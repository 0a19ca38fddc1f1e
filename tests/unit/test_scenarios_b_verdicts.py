"""The resilience verdicts on synthetic series and scrapes: recovery, amplification, bottleneck."""

from __future__ import annotations

import math
import random
from collections.abc import Callable

import pytest

from loadtests.scenarios.base import Verdict
from loadtests.scenarios.verdicts import (
    ITEM_ROUTE,
    QUOTE_ROUTE,
    amplification,
    name_bottleneck,
    recovery_verdict,
    repeat_summary,
    route_quantile,
    spill_over,
)
from loadtests.scrape import Scrape
from loadtests.series import Second, Series

# A run: baseline 100..130, trigger 130..140, load until END (then the drain).
T0, TRIGGER_START, TRIGGER_END, END = 100, 130, 140, 220
BASELINE = (float(T0), float(TRIGGER_START))
RATE = 100
Shape = Callable[[int, random.Random], tuple[float, bool]]
"""``(second, rng) -> (latency of one request, did it succeed)``."""


def _healthy(_: int, rng: random.Random) -> tuple[float, bool]:
    return rng.lognormvariate(math.log(0.010), 0.3), True


def _stuck(_: int, rng: random.Random) -> tuple[float, bool]:
    return 1.0 + rng.random() * 0.01, False  # every request times out at the client's 1 s


def _series(shape: Callable[[int], Shape], end: int = END, seed: int = 1) -> dict[int, Second]:
    """RATE arrivals per second from T0 to ``end``; ``shape(second)`` says how each went."""
    rng = random.Random(seed)
    series = Series(slo_s=0.5)
    for second in range(T0, end):
        draw = shape(second)
        for i in range(RATE):
            started = second + i / RATE
            series.arrival(started)
            latency, ok = draw(second, rng)
            series.completion(started, latency, None if ok else "timeout")
    return series.seconds


def _recovering_at(recovered_at: int) -> Callable[[int], Shape]:
    def shape(second: int) -> Shape:
        return _stuck if TRIGGER_START <= second < recovered_at else _healthy

    return shape


def _verdict(seconds: dict[int, Second], **kwargs: float) -> Verdict:
    return recovery_verdict(seconds, float(TRIGGER_END), BASELINE, float(END), **kwargs)  # type: ignore[arg-type]


def test_recovery_time_is_the_first_second_of_a_healthy_window() -> None:
    verdict = _verdict(_series(_recovering_at(152)))
    assert verdict.passed
    assert verdict.label == "recovered"
    assert verdict.figures["time_to_recover_s"] == 12  # 152 - 140: not a second earlier
    assert verdict.figures["baseline_p50_s"] == pytest.approx(0.010, rel=0.1)
    assert "12 s" in verdict.headline


def test_a_trigger_that_does_no_harm_recovers_at_once() -> None:
    verdict = _verdict(_series(_recovering_at(TRIGGER_END)))
    assert verdict.label == "recovered"
    assert verdict.figures["time_to_recover_s"] == 0


def test_stuck_when_no_window_after_the_trigger_is_healthy() -> None:
    verdict = _verdict(_series(_recovering_at(END)))
    assert not verdict.passed
    assert verdict.label == "stuck"
    assert "time_to_recover_s" not in verdict.figures
    assert verdict.figures["final_goodput_ratio"] == 0
    assert verdict.figures["final_p50_s"] >= 1.0


def test_a_recovery_too_late_for_the_window_is_stuck() -> None:
    # Healthy again 25 s before the end of the load: no full 30 s window fits.
    verdict = _verdict(_series(_recovering_at(END - 25)))
    assert verdict.label == "stuck"


def test_recovered_late_fails_a_deadline() -> None:
    seconds = _series(_recovering_at(185))
    verdict = _verdict(seconds, within_s=30)
    assert not verdict.passed
    assert verdict.label == "recovered late"
    assert verdict.figures["time_to_recover_s"] == 45
    assert _verdict(seconds).passed  # without a deadline, late is still recovered


def test_noisy_baseline_does_not_read_as_stuck() -> None:
    # Heavier noise per request; the window's p50 comes from the merged histogram, so it holds.
    def noisy(_: int) -> Shape:
        return lambda _s, rng: (rng.lognormvariate(math.log(0.010), 0.8), True)

    for seed in range(5):
        verdict = _verdict(_series(noisy, seed=seed))
        assert verdict.label == "recovered", verdict.headline
        assert verdict.figures["time_to_recover_s"] == 0


def test_fast_failures_alone_are_not_a_recovery() -> None:
    # After the trigger every request fails fast (a shed 503): p50 is fine, goodput is not.
    def shedding(second: int) -> Shape:
        if second < TRIGGER_START:
            return _healthy
        return lambda _s, rng: (0.002, False)

    verdict = _verdict(_series(shedding))
    assert verdict.label == "stuck"


def test_a_slow_slice_inside_the_window_delays_the_recovery() -> None:
    # Healthy from 145, but 150..153 stuck again: a window starting before 154 has a bad slice.
    def relapse(second: int) -> Shape:
        return _stuck if TRIGGER_START <= second < 145 or 150 <= second < 153 else _healthy

    verdict = _verdict(_series(relapse))
    assert verdict.figures["time_to_recover_s"] == 13


def test_empty_seconds_after_the_trigger() -> None:
    seconds = _series(_recovering_at(TRIGGER_END))
    for second in range(TRIGGER_END, TRIGGER_END + 8):  # the generator sent nothing for 8 s
        del seconds[second]
    assert _verdict(seconds).figures["time_to_recover_s"] == 8
    nothing_after = {k: v for k, v in seconds.items() if k < TRIGGER_START}
    verdict = _verdict(nothing_after)
    assert verdict.label == "no data"
    assert not verdict.passed


def test_no_baseline_or_too_little_after_is_no_data() -> None:
    seconds = _series(_recovering_at(TRIGGER_END))
    assert recovery_verdict({}, 140.0, BASELINE, 220.0).label == "no data"
    short = recovery_verdict(seconds, float(TRIGGER_END), BASELINE, float(TRIGGER_END + 20))
    assert short.label == "no data"
    assert short.figures["observed_after_s"] == 20


def test_repeat_summary_counts_labels_and_takes_the_median_time() -> None:
    verdicts = [
        Verdict(True, "recovered", "", {"time_to_recover_s": t}) for t in (4.0, 9.0, 6.0, 30.0)
    ] + [Verdict(False, "stuck", "", {})]
    assert repeat_summary(verdicts, "recovered") == (4, 7.5)
    assert repeat_summary(verdicts, "stuck") == (1, 7.5)
    assert repeat_summary(verdicts[-1:], "stuck") == (1, None)


# --- scrapes ----------------------------------------------------------------------------------

Sample = tuple[str, dict[str, str], float]
BUCKETS = ("0.005", "0.01", "0.05", "0.1", "0.5", "1.0", "+Inf")


def _scrape(at: float, samples: list[Sample]) -> Scrape:
    values: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    for name, labels, value in samples:
        key = (name, tuple(sorted(labels.items())))
        values[key] = values.get(key, 0.0) + value
    return Scrape(at, values)


def _histogram(route: str, counts: dict[str, float]) -> list[Sample]:
    """Cumulative buckets of ``route`` from per-bucket counts."""
    total, samples = 0.0, []
    for le in BUCKETS:
        total += counts.get(le, 0.0)
        labels = {"route": route, "method": "GET", "le": le}
        samples.append(("brink_http_request_duration_seconds_bucket", labels, total))
    return samples


def _storm_scrape(at: float, scale: float, *, pool_timeouts: float = 0.0) -> Scrape:
    """Counters after ``scale`` x (100 quote requests, 250 attempts: 100 ok, 150 failed)."""
    return _scrape(
        at,
        [
            ("brink_http_requests_total", {"route": QUOTE_ROUTE, "method": "GET", "status": "200"},
             60 * scale),
            ("brink_http_requests_total", {"route": QUOTE_ROUTE, "method": "GET", "status": "502"},
             40 * scale),
            ("brink_http_requests_total", {"route": ITEM_ROUTE, "method": "GET", "status": "200"},
             500 * scale),
            ("brink_dependency_calls_total", {"target": "external"}, 100 * scale),
            ("brink_dependency_attempts_total", {"target": "external"}, 250 * scale),
            ("brink_dependency_attempts_total", {"target": "db"}, 999 * scale),
            ("brink_external_requests_total", {"outcome": "ok"}, 100 * scale),
            ("brink_external_requests_total", {"outcome": "http_error"}, 150 * scale),
            ("brink_external_requests_total", {"outcome": "pool_timeout"}, pool_timeouts * scale),
            ("brink_breaker_rejected_total", {"target": "external"}, 0.0),
        ],
    )  # fmt: skip


def test_amplification_counts_what_reached_the_dependency_per_client_request() -> None:
    scrapes = [_storm_scrape(100.0, 1.0), _storm_scrape(110.0, 3.0)]
    found = amplification(scrapes, (100.0, 110.0))
    assert found is not None
    assert found.client_requests == 200
    assert found.calls == 200
    assert found.attempts == 500
    assert found.ratio == 2.5
    assert found.retries_per_call == 1.5
    assert found.figures("naive_")["naive_amplification"] == 2.5


def test_local_pool_timeouts_never_reached_the_dependency() -> None:
    before = _storm_scrape(100.0, 0.0, pool_timeouts=50)
    scrapes = [before, _storm_scrape(110.0, 1.0, pool_timeouts=50)]
    found = amplification(scrapes, (100.0, 110.0))
    assert found is not None
    assert found.reached == 250
    assert found.ratio == 2.5


def test_calls_the_breaker_refused_count_as_requests_that_needed_the_dependency() -> None:
    def at(t: float, scale: float) -> Scrape:
        return _scrape(
            t,
            [
                ("brink_dependency_calls_total", {"target": "external"}, 10 * scale),
                ("brink_dependency_attempts_total", {"target": "external"}, 12 * scale),
                ("brink_external_requests_total", {"outcome": "http_error"}, 12 * scale),
                ("brink_breaker_rejected_total", {"target": "external"}, 85 * scale),
                ("brink_bulkhead_rejected_total", {"name": "external"}, 5 * scale),
            ],
        )

    found = amplification([at(0.0, 0.0), at(10.0, 1.0)], (0.0, 10.0))
    assert found is not None
    assert found.wanted == 100
    assert found.ratio == pytest.approx(0.12)


def test_amplification_needs_two_scrapes_apart() -> None:
    assert amplification([], (0.0, 10.0)) is None
    assert amplification([_storm_scrape(100.0, 1.0)], (100.0, 110.0)) is None


def test_route_quantile_interpolates_inside_the_bucket() -> None:
    first = _scrape(0.0, _histogram(ITEM_ROUTE, {}))
    # 100 requests: 90 under 5 ms, 10 between 50 and 100 ms: p95 is half way into (50, 100].
    last = _scrape(10.0, _histogram(ITEM_ROUTE, {"0.005": 90, "0.1": 10}))
    p95 = route_quantile([first, last], (0.0, 10.0), ITEM_ROUTE, 0.95)
    assert p95 == pytest.approx(0.075)
    assert route_quantile([first, last], (0.0, 10.0), QUOTE_ROUTE, 0.95) is None


def test_spill_over_compares_the_reads_before_and_during() -> None:
    def at(t: float, fast: float, slow: float, failed: float) -> Scrape:
        samples = _histogram(ITEM_ROUTE, {"0.005": fast, "0.5": slow})
        status = {"route": ITEM_ROUTE, "method": "GET"}
        samples += [
            ("brink_http_requests_total", {**status, "status": "200"}, fast + slow - failed),
            ("brink_http_requests_total", {**status, "status": "503"}, failed),
        ]
        return _scrape(t, samples)

    scrapes = [at(0, 0, 0, 0), at(10, 1000, 0, 0), at(20, 1500, 500, 100)]
    found = spill_over(scrapes, (0.0, 10.0), (10.0, 20.0))
    assert found.p95_before_s is not None
    assert found.p95_before_s <= 0.005
    assert found.p95_during_s is not None
    assert 0.1 < found.p95_during_s <= 0.5
    assert found.p95_ratio > 20
    assert found.error_share_before == 0
    assert found.error_share_during == pytest.approx(0.1)


def _service(at: float, *, cpu: float, busy: float, waits: float, external: float) -> Scrape:
    """Counters after ``at`` seconds of a steady state: per-second rates times ``at``."""
    return _scrape(
        at,
        [
            ("brink_http_request_duration_seconds_sum", {"route": "/orders", "method": "POST"},
             10 * at),
            ("brink_http_requests_total", {"route": "/orders", "method": "POST", "status": "201"},
             50 * at),
            ("brink_db_connection_busy_seconds_total", {"route": "/orders"}, busy * at),
            ("brink_db_pool_acquire_wait_seconds_sum", {}, waits * at),
            ("brink_db_pool_acquire_wait_seconds_count", {}, 50 * at),
            ("brink_db_pool_max", {}, 5.0),
            ("brink_external_request_duration_seconds_sum", {"outcome": "ok"}, external * at),
            ("brink_external_connections_max", {}, 10.0),
            ("process_cpu_seconds_total", {}, cpu * at),
        ],
    )  # fmt: skip


def _pg(at: float, lock_waits: float, blocked: float) -> Scrape:
    return _scrape(
        at, [("brink_pg_lock_waits", {}, lock_waits), ("brink_pg_blocked_backends", {}, blocked)]
    )


def _bottleneck(pg: list[Scrape] | None = None, **rates: float) -> str:
    scrapes = [_service(t, **rates) for t in (10.0, 20.0, 30.0)]
    found = name_bottleneck(scrapes, (10.0, 30.0), pg or [])
    assert found is not None
    return found.resource


def test_a_full_pool_held_by_lock_waiters_is_the_row_lock() -> None:
    pg = [_pg(t, 4, 4) for t in range(10, 31)]
    locked = {"cpu": 0.15, "busy": 5.0, "waits": 20.0, "external": 0.0}
    assert _bottleneck(pg, **locked) == "row-lock wait"
    assert _bottleneck(None, **locked) == "db pool"  # without Postgres' view: only the pool
    scrapes = [_service(t, **locked) for t in (10.0, 30.0)]
    found = name_bottleneck(scrapes, (10.0, 30.0), pg)
    assert found is not None
    assert found.evidence["lock_wait_s_per_s"] == 4
    assert found.evidence["blocked_backends"] == 4
    assert found.evidence["cpu_utilisation"] == pytest.approx(0.15)
    assert "Row-lock wait" in found.explanation
    assert "CPU 15%" in found.explanation


def test_an_occasional_lock_wait_is_not_the_bottleneck() -> None:
    pg = [_pg(t, 1 if t % 5 == 0 else 0, 1 if t % 5 == 0 else 0) for t in range(10, 31)]
    assert _bottleneck(pg, cpu=0.97, busy=2.0, waits=0.0, external=1.0) == "cpu"


def test_pool_cpu_external_and_none() -> None:
    assert _bottleneck(cpu=0.3, busy=4.8, waits=3.0, external=1.0) == "db pool"
    assert _bottleneck(cpu=0.95, busy=2.0, waits=0.0, external=1.0) == "cpu"
    assert _bottleneck(cpu=0.3, busy=1.0, waits=0.0, external=9.5) == "external api"
    assert _bottleneck(cpu=0.3, busy=1.0, waits=0.0, external=1.0) == "none"
    assert name_bottleneck([], (0.0, 10.0)) is None
