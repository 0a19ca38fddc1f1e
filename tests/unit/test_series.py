"""The per-second client series: filing, merging, windows and percentiles."""

from __future__ import annotations

import random

import pytest

from loadtests.series import Series, bucket_of, bucket_top, percentile, window


def test_buckets_bound_the_latency_within_a_few_percent() -> None:
    for latency in (0.0002, 0.001, 0.0206, 0.5, 3.0, 29.9):
        top = bucket_top(bucket_of(latency))
        assert latency <= top <= latency * 1.026


def test_percentiles_of_a_known_distribution() -> None:
    series = Series(slo_s=1.0)
    for i in range(1, 1001):  # latencies 1..1000 ms, all started in second 100
        series.completion(100.5, i / 1000, None)
    histogram = series.seconds[100].latency
    assert percentile(histogram, 0.50) == pytest.approx(0.500, rel=0.03)
    assert percentile(histogram, 0.95) == pytest.approx(0.950, rel=0.03)
    assert percentile(histogram, 0.99) == pytest.approx(0.990, rel=0.03)
    assert percentile({}, 0.5) is None


def test_goodput_counts_successes_within_the_slo_only() -> None:
    series = Series(slo_s=0.1)
    series.completion(10.0, 0.05, None)  # good
    series.completion(10.0, 0.20, None)  # ok but too slow
    series.completion(10.0, 0.01, "http_503")  # fast failure
    second = series.seconds[10]
    assert (second.completed, second.ok, second.good) == (3, 2, 1)
    assert second.errors == {"http_503": 1}


def test_a_window_gives_rates_per_second_of_its_own_requests() -> None:
    series = Series(slo_s=1.0)
    for t in range(100, 110):
        for _ in range(20):
            series.arrival(t + 0.3)
            series.completion(t + 0.3, 0.01, None)
        series.drop(t + 0.5, 2)
    stats = window(series.seconds, 102, 108)
    assert stats.window_s == 6
    assert stats.offered_rps == 20
    assert stats.achieved_rps == 20
    assert stats.goodput_rps == 20
    assert stats.dropped_rps == 2
    assert stats.requests == 120


def test_merging_worker_deltas_equals_recording_in_one_place() -> None:
    rng = random.Random(7)
    events = [(100 + rng.random() * 5, rng.expovariate(20)) for _ in range(500)]
    one = Series(slo_s=0.1)
    workers = [Series(slo_s=0.1), Series(slo_s=0.1)]
    for i, (started, latency) in enumerate(events):
        for target in (one, workers[i % 2]):
            target.arrival(started)
            target.completion(started, latency, None if latency < 0.2 else "timeout")
    master = Series(slo_s=0.1)
    for worker in workers:
        master.merge(worker.take())
        assert worker.seconds == {}
    assert window(master.seconds, 100, 105) == window(one.seconds, 100, 105)


def test_round_trip_through_json_shape() -> None:
    series = Series(slo_s=0.5)
    series.arrival(5.2)
    series.completion(5.2, 0.3, "check")
    restored = Series.seconds_from_dict(series.to_dict())
    assert restored == series.seconds
