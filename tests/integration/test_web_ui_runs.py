"""Locust's web UI as a user drives it: every run takes its own form, and the live tab is right.

Real processes: the module's slow API and demo service on the session's Postgres, and Locust
with brink's locustfile, once as one process and once as a master with one worker
(``--processes 1``), where the form's values must travel to the worker with the spawn message.
Two runs are started through exactly the form post the web UI makes, stopped with its Stop
button in between ("New" only reopens the form in the browser: it calls nothing). Each run's
own mix, rates, profile and SLO are proven from what the service counted and what the
generator reported, and the "brink live" tab's figures are checked against scrapes of the
service's own ``/metrics``.
"""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx2
import pytest

from loadtests.live_view import LIVE_TAB
from loadtests.locustfiles import BRINK_LOCUSTFILE
from loadtests.native.process import ManagedProcess, free_port
from loadtests.scrape import Scrape, increase, parse
from tests.support import Served

pytestmark = pytest.mark.integration

ITEMS, ORDERS = "GET /items/{item_id}", "POST /orders"
WHAT_THE_FORM_POSTS = {"user_count": "0", "spawn_rate": "0", "run_time": "", "profile": ""}
"""The web UI's form besides the custom parameters, for a locustfile with a shape class (it
disables the user count and the spawn rate, and sends them as 0)."""
# Even arrivals: the offered rate is exact, so a few seconds measure it. Steps far longer than
# the test: each run is stopped in its first stage, which runs at average_rps.
FIRST_RUN = {
    "load_profile": "average",
    "average_rps": "20",
    "peak_rps": "40",
    "step_s": "60",
    "slo_ms": "0.01",  # no answer is that fast: no goodput at all
    "mix": "item=1",
    "arrivals": "even",
    "client_retries": "none",
}
SECOND_RUN = {
    "load_profile": "peak",
    "average_rps": "60",
    "peak_rps": "80",
    "step_s": "60",
    "slo_ms": "500",  # every order answers within it: goodput is the offered load
    "mix": "order=1",
    "arrivals": "even",
    "client_retries": "budgeted",
}
WINDOW_S = 3.0
"""The measured window of each run."""
RATE_TOLERANCE = 0.2


def _poll_until(check: Callable[[], bool], deadline_s: float, what: str) -> None:
    deadline = time.monotonic() + deadline_s
    while not check():
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: not within {deadline_s:.0f} s")
        time.sleep(0.1)


def _requests(scrape: Scrape, route: str) -> float:
    return sum(
        value
        for (name, labels), value in scrape.values.items()
        if name == "brink_http_requests_total" and dict(labels)["route"] == route
    )


def _number(value: Any) -> float | None:
    return value if isinstance(value, int | float) else None


@dataclass
class LocustUi:
    """Locust's web UI and the service it loads, driven over HTTP as the browser does."""

    url: str
    service: str
    process: ManagedProcess
    http: httpx2.Client

    def stats(self) -> dict[str, Any]:
        if not self.process.running():
            pytest.fail(f"Locust exited:\n{self.process.log_tail()}")
        response = self.http.get(self.url + "/stats/requests")
        response.raise_for_status()
        report: dict[str, Any] = response.json()
        return report

    def names(self) -> set[str]:
        """What Locust counted in this run (its statistics restart with every run)."""
        rows = self.stats()["stats"]
        return {row["name"] for row in rows if row["name"] != "Aggregated" and row["num_requests"]}

    def workers(self) -> int:
        return int(self.stats().get("worker_count", 0))

    def live_rows(self) -> list[dict[str, Any]]:
        tabs = {tab["key"]: tab["data"] for tab in self.stats().get("extended_stats", [])}
        rows: list[dict[str, Any]] = tabs[LIVE_TAB]
        return rows

    def swarm(self, run: dict[str, str]) -> dict[str, Any]:
        form = WHAT_THE_FORM_POSTS | {"host": self.service} | run
        response = self.http.post(self.url + "/swarm", data=form)
        response.raise_for_status()
        answer: dict[str, Any] = response.json()
        return answer

    def stop(self) -> None:
        self.http.post(self.url + "/stop").raise_for_status()
        _poll_until(lambda: self.stats()["state"] == "stopped", 15, "Locust stopped")

    def scrape(self) -> Scrape:
        return parse(self.http.get(self.service + "/metrics").text, time.time())

    def watch_for(self, seconds: float) -> None:
        """Let ``seconds`` pass, polling the web UI as the open page does (every poll keeps the
        live tab's scraping on; the page itself polls every 2 s)."""
        end = time.monotonic() + seconds
        _poll_until(lambda: bool(self.stats()) and time.monotonic() >= end, seconds + 5, "time")

    def measure(self, route: str, before: float) -> tuple[Scrape, Scrape]:
        """Two scrapes of the service ``WINDOW_S`` apart, once it served ``route`` more than
        ``before`` times (the service outlives each run)."""
        _poll_until(lambda: _requests(self.scrape(), route) > before, 20, f"{route} served")
        self.watch_for(1.0)  # the dispatchers' ramp (one second at most)
        first = self.scrape()
        self.watch_for(WINDOW_S)
        return first, self.scrape()


def _locust_argv(host: str, web_port: int, workers: int) -> list[str]:
    argv = [
        sys.executable, "-m", "locust", "-f", str(BRINK_LOCUSTFILE),
        "--host", host, "--web-host", "127.0.0.1", "--web-port", str(web_port),
    ]  # fmt: skip
    if workers:
        port = str(free_port())
        argv += ["--processes", str(workers), "--master-bind-host", "127.0.0.1"]
        argv += ["--master-bind-port", port, "--master-host", "127.0.0.1", "--master-port", port]
    return argv


@pytest.fixture(scope="module", params=[0, 1], ids=["one-process", "master-and-worker"])
def locust(
    request: pytest.FixtureRequest, service: Served, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LocustUi]:
    """Locust's web UI with brink's locustfile aimed at the service: one process (as ``brink
    up`` starts it by default), or a master whose worker gets the form with the spawn message."""
    workers: int = request.param
    web_port = free_port()
    log = Path(tmp_path_factory.mktemp("locust")) / "locust.log"
    process = ManagedProcess("Locust", _locust_argv(service.base_url, web_port, workers), log)
    process.start()
    try:
        url = f"http://127.0.0.1:{web_port}"
        process.wait_http_ready(url + "/")
        with httpx2.Client(timeout=5.0) as http:
            ui = LocustUi(url, service.base_url, process, http)
            _poll_until(lambda: ui.workers() == workers, 20, "the workers connected")
            yield ui
    finally:
        process.stop()


def _rate(first: Scrape, last: Scrape, route: str) -> float:
    return (_requests(last, route) - _requests(first, route)) / (last.at - first.at)


def _settled(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The live rows whose client figures are final, with load offered."""
    return [row for row in rows if (_number(row["offered_rps"]) or 0) > 0]


def _within(rows: list[dict[str, Any]], first: Scrape, last: Scrape) -> list[dict[str, Any]]:
    """The live rows of windows ending in ``[first, last]`` (a row is named by its end's
    second), when the load is steady: ``first`` is a second after the ramp."""
    ends = {
        time.strftime("%H:%M:%S", time.localtime(t))
        for t in range(int(first.at) + 1, int(last.at) + 1)
    }
    return [row for row in rows if row["name"] in ends]


def test_the_page_offers_the_live_tab(locust: LocustUi) -> None:
    page = locust.http.get(locust.url + "/").text
    assert '"extended_tabs": [{"key": "brink-live", "title": "brink live"}]' in page


def test_a_bad_form_is_refused_and_starts_nothing(locust: LocustUi) -> None:
    before = locust.stats()["state"]
    for field, value, says in (
        ("mix", "bogus=1", "bad mix entry 'bogus=1'"),
        ("average_rps", "lots", "average_rps: 'lots' is not a float"),
        ("load_profile", "no-such", "unknown profile"),
    ):
        answer = locust.swarm(FIRST_RUN | {field: value})
        assert answer["success"] is False
        assert says in answer["message"]
    assert locust.stats()["state"] == before
    assert locust.stats()["user_count"] == 0


def test_each_run_takes_its_own_form_and_the_live_tab_agrees(locust: LocustUi) -> None:
    # Run 1: items only, at 20 req/s, with an SLO nothing meets.
    items_before = _requests(locust.scrape(), "/items/{item_id}")
    assert locust.swarm(FIRST_RUN)["success"] is True
    first, last = locust.measure("/items/{item_id}", items_before)
    assert _rate(first, last, "/items/{item_id}") == pytest.approx(20, rel=RATE_TOLERANCE)
    assert _requests(last, "/orders") == _requests(first, "/orders")
    _poll_until(lambda: bool(locust.names()), 10, "Locust's first statistics")
    assert locust.names() == {ITEMS}
    _poll_until(lambda: bool(_settled(locust.live_rows())), 10, "run 1's settled live rows")
    rows = _settled(locust.live_rows())
    assert {row["stage"] for row in rows} == {"average 1/3 (20 req/s)"}
    assert {row["goodput_rps"] for row in rows} == {0}
    locust.stop()

    # Run 2, from the same page: orders only, at 60 req/s, on another profile, another SLO.
    orders_before = _requests(locust.scrape(), "/orders")
    assert locust.swarm(SECOND_RUN)["success"] is True
    first, last = locust.measure("/orders", orders_before)
    assert _rate(first, last, "/orders") == pytest.approx(60, rel=RATE_TOLERANCE)
    assert _requests(last, "/items/{item_id}") == _requests(first, "/items/{item_id}")
    _poll_until(lambda: bool(locust.names()), 10, "Locust's first statistics")
    assert locust.names() == {ORDERS}
    _check_live_tab(locust, first, last)
    locust.stop()


def _check_live_tab(locust: LocustUi, first: Scrape, last: Scrape) -> None:
    """The live rows of the measured window against the service's counters over it."""
    _poll_until(
        lambda: bool(_settled(_within(locust.live_rows(), first, last))),
        15,
        "final client figures in the measured window",
    )
    rows = locust.live_rows()
    inside = _within(rows, first, last)
    assert len(inside) >= 2, rows
    assert {row["stage"] for row in inside} == {"average (60 req/s)"}
    assert {row["target_rps"] for row in inside} == {60}

    def mean(key: str) -> float:
        return statistics.fmean(row[key] for row in inside)

    def rate(counter: str) -> float:
        return increase(first, last, counter) / (last.at - first.at)

    assert mean("served_rps") == pytest.approx(rate("brink_http_requests_total"), rel=0.15)
    in_flight = rate("brink_http_request_duration_seconds_sum")
    assert 0 < mean("in_flight") == pytest.approx(in_flight, rel=0.5)
    pool_in_use = rate("brink_db_connection_busy_seconds_total")
    assert 0 < mean("pool_in_use") == pytest.approx(pool_in_use, rel=0.5)
    assert mean("external_rps") == 0  # orders never call the slow API
    assert {row["breaker"] for row in inside} <= {"closed", "none"}
    for row in _settled(inside):
        assert row["offered_rps"] == pytest.approx(60, rel=RATE_TOLERANCE)
        assert row["goodput_rps"] == pytest.approx(row["offered_rps"], rel=0.05)
