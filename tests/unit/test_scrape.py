"""Server-side stage figures from counters (Little's law), on synthetic scrapes."""

from __future__ import annotations

from string import Template

import pytest

from loadtests.scrape import Scrape, parse, server_window

TEXT = Template("""
# TYPE brink_http_request_duration_seconds histogram
brink_http_request_duration_seconds_sum{method="GET",route="/items/{item_id}"} $latency_sum
brink_http_request_duration_seconds_sum{method="GET",route="/metrics"} $metrics_sum
# TYPE brink_http_requests_total counter
brink_http_requests_total{method="GET",route="/items/{item_id}",status="200"} $requests
brink_http_requests_total{method="GET",route="/metrics",status="200"} $scrapes
# TYPE brink_db_connection_busy_seconds_total counter
brink_db_connection_busy_seconds_total{route="/items/{item_id}"} $busy
# TYPE brink_db_pool_acquire_wait_seconds histogram
brink_db_pool_acquire_wait_seconds_sum $wait_sum
brink_db_pool_acquire_wait_seconds_count $wait_count
# TYPE brink_db_pool_max gauge
brink_db_pool_max 5
# TYPE process_cpu_seconds_total counter
process_cpu_seconds_total $cpu
""")


def _scrape(at: float, **values: float) -> Scrape:
    return parse(TEXT.substitute(values), at)


def test_means_come_from_counter_rates() -> None:
    # Over 10 s: 1,000 requests of 30 ms each (in flight 3.0 on average), pool busy 25 s
    # (2.5 connections), waits totalling 5 s over 1,000 acquisitions, 6 CPU seconds.
    first = _scrape(100.0, latency_sum=0, metrics_sum=0, requests=0, scrapes=0, busy=0,
                    wait_sum=0, wait_count=0, cpu=10)  # fmt: skip
    last = _scrape(110.0, latency_sum=30, metrics_sum=0.5, requests=1000, scrapes=10, busy=25,
                   wait_sum=5, wait_count=1000, cpu=16)  # fmt: skip
    sample = server_window([first, last], 100.0, 110.0)
    assert sample is not None
    assert sample.in_flight == pytest.approx(3.0)  # /metrics itself left out
    assert sample.throughput_rps == pytest.approx(100.0)
    assert sample.pool_in_use == pytest.approx(2.5)
    assert sample.pool_utilisation == pytest.approx(0.5)
    assert sample.pool_waiters == pytest.approx(0.5)
    assert sample.acquire_wait_s == pytest.approx(0.005)
    assert sample.cpu_utilisation == pytest.approx(0.6)


def test_too_few_scrapes_give_no_sample() -> None:
    only = _scrape(100.0, latency_sum=0, metrics_sum=0, requests=0, scrapes=0, busy=0,
                   wait_sum=0, wait_count=0, cpu=0)  # fmt: skip
    assert server_window([only], 100.0, 110.0) is None
    assert server_window([], 100.0, 110.0) is None
