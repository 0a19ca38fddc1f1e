"""The live tab's figures, on synthetic scrapes of the service and a synthetic client series."""

from __future__ import annotations

import itertools
from string import Template

import pytest

from loadtests.live_view import (
    COLUMNS,
    MAX_WINDOW_S,
    PENDING,
    breaker,
    client_seconds,
    live_row,
    live_rows,
    stage_at,
    tab_title,
    table_row,
)
from loadtests.scrape import Scrape, parse
from loadtests.series import Series

TEXT = Template("""
# TYPE brink_http_request_duration_seconds histogram
brink_http_request_duration_seconds_sum{method="GET",route="/items/{item_id}"} $latency_sum
brink_http_request_duration_seconds_sum{method="GET",route="/metrics"} $metrics_sum
# TYPE brink_http_requests_total counter
brink_http_requests_total{method="GET",route="/items/{item_id}",status="200"} $requests
brink_http_requests_total{method="GET",route="/metrics",status="200"} $scrapes
# TYPE brink_db_connection_busy_seconds_total counter
brink_db_connection_busy_seconds_total{route="/items/{item_id}"} $busy
# TYPE brink_db_pool_acquisitions_total counter
brink_db_pool_acquisitions_total{route="/items/{item_id}"} $checkouts
# TYPE brink_db_pool_acquire_wait_seconds histogram
brink_db_pool_acquire_wait_seconds_sum $wait_sum
brink_db_pool_acquire_wait_seconds_count $checkouts
# TYPE brink_db_pool_max gauge
brink_db_pool_max 8
# TYPE brink_external_requests_total counter
brink_external_requests_total{outcome="ok"} $external_ok
brink_external_requests_total{outcome="error"} $external_error
# TYPE brink_retries_total counter
brink_retries_total{policy="budgeted",target="external"} $retries
# TYPE brink_shed_total counter
brink_shed_total{reason="admission"} $shed
# TYPE brink_breaker_state gauge
brink_breaker_state{target="external"} $breaker
# TYPE brink_process_cpu_seconds_total counter
brink_process_cpu_seconds_total $cpu
""")
ZERO = dict.fromkeys(
    ("latency_sum", "metrics_sum", "requests", "scrapes", "busy", "checkouts", "wait_sum",
     "external_ok", "external_error", "retries", "shed", "breaker", "cpu"),
    0.0,
)  # fmt: skip
TIMELINE = [
    {"index": 0, "name": "average (20 req/s)", "rps": 20.0, "start": 1000.0},
    {"index": 1, "name": "peak (60 req/s)", "rps": 60.0, "start": 1010.0},
]


def _scrape(at: float, **values: float) -> Scrape:
    return parse(TEXT.substitute(ZERO | values), at)


def _busy_second() -> tuple[Scrape, Scrape]:
    """Two scrapes 2 s apart: 100 requests of 20 ms, 80 checkouts of 5 ms with 1 ms waits,
    30 slow-API calls (10 failed), 6 service retries, 4 shed, the breaker open, 1 CPU second."""
    first = _scrape(1010.25, cpu=5.0)
    last = _scrape(
        1012.25, latency_sum=2.0, metrics_sum=0.3, requests=100, scrapes=2, busy=0.4,
        checkouts=80, wait_sum=0.08, external_ok=20, external_error=10, retries=6, shed=4,
        breaker=2, cpu=6.0,
    )  # fmt: skip
    return first, last


def test_service_figures_come_from_counters_over_the_window() -> None:
    first, last = _busy_second()
    row = live_row(first, last, {}, TIMELINE, final_before=0.0)
    assert row is not None
    assert row.served_rps == pytest.approx(50.0)  # /metrics itself left out
    assert row.in_flight == pytest.approx(1.0)  # Little: 50/s x 20 ms
    assert row.pool_in_use == pytest.approx(0.2)
    assert row.pool_size == 8
    assert row.db_hold_s == pytest.approx(0.005)
    assert row.acquire_wait_s == pytest.approx(0.001)
    assert row.pool_waiters == pytest.approx(0.04)
    assert row.external_rps == pytest.approx(15.0)  # every outcome
    assert row.retries_rps == pytest.approx(3.0)
    assert row.shed_rps == pytest.approx(2.0)
    assert row.breaker == "open (external)"
    assert row.cpu == pytest.approx(0.5)
    assert (row.stage, row.target_rps) == ("peak (60 req/s)", 60.0)


def test_client_figures_wait_until_their_seconds_are_final() -> None:
    first, last = _busy_second()
    series = Series(slo_s=0.5)
    for second in (1010, 1011):
        for _ in range(30):
            series.arrival(second + 0.5)
        for latency in [0.1] * 25 + [0.9] * 5:  # 5 too slow for the SLO
            series.completion(second + 0.5, latency, None)
    assert client_seconds(first.at, last.at) == (1010, 1012)
    early = live_row(first, last, series.seconds, TIMELINE, final_before=1011.9)
    assert early is not None
    assert early.client is None
    assert table_row(early)["goodput_rps"] == PENDING
    settled = live_row(first, last, series.seconds, TIMELINE, final_before=1012.0)
    assert settled is not None
    assert settled.client is not None
    assert settled.client.offered_rps == pytest.approx(30.0)
    assert settled.client.goodput_rps == pytest.approx(25.0)


def test_consecutive_windows_share_no_client_second() -> None:
    starts = [100.3, 101.31, 102.35, 103.2, 104.7]
    seconds = [client_seconds(a, b) for a, b in itertools.pairwise(starts)]
    assert seconds == [(100, 101), (101, 102), (102, 103), (103, 105)]
    assert client_seconds(100.6, 101.4) == (101, 102)  # under a second: still one second


def test_rows_skip_gaps_and_come_oldest_first() -> None:
    scrapes = [
        _scrape(1000.0),
        _scrape(1001.0, requests=10, latency_sum=0.1),
        _scrape(1001.0 + MAX_WINDOW_S + 1, requests=20, latency_sum=0.2),  # a gap: no row
        _scrape(1008.0, requests=50, latency_sum=0.5),
        _scrape(1008.2, requests=51, latency_sum=0.51),  # too short to say anything
    ]
    rows = live_rows(scrapes, {}, TIMELINE, now=2000.0, settle_s=4.0)
    assert [row.at for row in rows] == [1001.0, 1008.0]
    assert [row.served_rps for row in rows] == pytest.approx([10.0, 30.0])
    assert [row.stage for row in rows] == ["average (20 req/s)"] * 2


def test_a_restarted_service_reads_as_no_growth() -> None:
    first = _scrape(1000.0, requests=500, latency_sum=5.0, shed=40)
    last = _scrape(1001.0, requests=3, latency_sum=0.03)
    row = live_row(first, last, {}, [], final_before=0.0)
    assert row is not None
    assert (row.served_rps, row.in_flight, row.shed_rps) == (0.0, 0.0, 0.0)


def test_stage_before_the_timeline_is_idle() -> None:
    assert stage_at(TIMELINE, 999.9) == ("idle", None)
    assert stage_at(TIMELINE, 1000.0) == ("average (20 req/s)", 20.0)
    assert stage_at([], 5.0) == ("idle", None)


def test_breaker_reads_the_worst_state_and_says_where() -> None:
    assert breaker(_scrape(0.0, breaker=0)) == "closed"
    assert breaker(_scrape(0.0, breaker=1)) == "half-open (external)"
    assert breaker(parse("# TYPE brink_http_requests_total counter\n", 0.0)) == "none"


def test_table_rows_fill_every_column_and_nothing_else() -> None:
    first, last = _busy_second()
    row = live_row(first, last, {}, [], final_before=0.0)
    assert row is not None
    shown = table_row(row)
    assert list(shown) == [key for key, _ in COLUMNS]
    assert shown["stage"] == "idle"
    assert shown["target_rps"] == ""
    assert shown["db_hold_ms"] == 5.0
    assert shown["offered_rps"] == PENDING


def test_the_tab_names_the_scenario_and_phase_when_given() -> None:
    assert tab_title({}) == "brink live"
    assert tab_title({"phase": "fragile", "scenario": "metastable"}) == (
        "brink live: metastable / fragile"
    )
    assert tab_title({"scenario": "ramp", "phase": ""}) == "brink live: ramp"
