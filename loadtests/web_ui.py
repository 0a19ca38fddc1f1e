"""brink inside Locust's web UI (the master or the only process): the form's check, a live tab.

Glue only, run inside Locust's gevent hub:

- ``POST /swarm`` is checked first (:func:`loadtests.run_settings.form_problem`): a form that
  would start a broken run is refused with Locust's own ``{"success": false, "message": ...}``,
  which the form shows, and nothing starts;
- the "brink live" tab holds one table (Locust's ``extended_tabs`` / ``extended_tables``),
  whose rows ride along in ``/stats/requests`` as ``extended_stats``: the page polls that every
  2 s. The rows are :mod:`loadtests.live_view`'s, computed at each poll from the last few
  scrapes of the service's ``/metrics`` (the Locust host + ``/metrics``), which a greenlet takes
  every second while the page is open: the service's columns show a lesson that another
  generator drives (``brink scenario --stack native``) as well as the page's own run.
"""

from __future__ import annotations

import json
import logging
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import gevent
from flask import Response, jsonify, request
from locust.env import Environment
from locust.runners import WORKER_REPORT_INTERVAL, MasterRunner

from loadtests.live_view import COLUMNS, LIVE_TAB, live_rows, tab_title, table_row
from loadtests.run_settings import form_problem
from loadtests.scrape import Scrape, Scraper
from loadtests.series import Series

logger = logging.getLogger(__name__)

SCRAPE_INTERVAL_S = 1.0
KEEP_SCRAPES = 16
"""Scrapes kept: the table shows the windows between them, about the last 15 seconds."""
WATCHED_FOR_S = 10.0
"""The page polls ``/stats/requests`` every 2 s; without a poll for this long, nobody watches."""
SCRAPE_TIMEOUT_S = 2.0
Timeline = Callable[[], Sequence[Mapping[str, Any]]]


class ServiceWatch:
    """The last few scrapes of the service's ``/metrics``, taken while someone watches."""

    def __init__(self, environment: Environment) -> None:
        self.environment = environment
        self.scrapes: deque[Scrape] = deque(maxlen=KEEP_SCRAPES)
        self.watched_at = 0.0
        self._scraper: Scraper | None = None

    def wanted(self) -> bool:
        """While the page is open, run or no run: the service's side of the table shows
        whoever loads it, a lesson driven by ``brink scenario --stack`` too."""
        return time.monotonic() - self.watched_at < WATCHED_FOR_S

    def url(self) -> str | None:
        host = self.environment.host
        return host.rstrip("/") + "/metrics" if host else None

    def scrape(self) -> None:
        url = self.url()
        if url is None:
            return
        if self._scraper is None or self._scraper.url != url:
            if self._scraper is not None:
                self._scraper.close()
            self._scraper = Scraper(url, SCRAPE_TIMEOUT_S)
            self.scrapes.clear()  # another service's counters
        scrape = self._scraper.scrape()
        self._scraper.scrapes.clear()  # the Scraper keeps every scrape; the watch, the last few
        if scrape is not None:
            self.scrapes.append(scrape)

    def run_forever(self) -> None:
        while True:
            if self.wanted():
                try:
                    self.scrape()
                except ValueError:  # not Prometheus text: a wrong host, say
                    logger.warning("brink live: %s is not Prometheus text", self.url())
            gevent.sleep(SCRAPE_INTERVAL_S)


def install(
    environment: Environment,
    series: Series,
    timeline: Timeline,
    run_labels: Mapping[str, str],
) -> None:
    """Add the form's check and the live tab to the web UI, and start scraping the service."""
    web_ui, runner = environment.web_ui, environment.runner
    if web_ui is None or web_ui.app is None or runner is None:
        return
    logging.getLogger("httpx2").setLevel(logging.WARNING)  # not a log line per scrape
    watch = ServiceWatch(environment)
    runner.greenlet.spawn(watch.run_forever)
    start = environment.events.test_start
    start.add_listener(lambda **_: watch.scrapes.clear())  # type: ignore[no-untyped-call]
    # Workers report their seconds every few seconds: until then the master's are incomplete.
    report_lag_s = WORKER_REPORT_INTERVAL + 1.0 if isinstance(runner, MasterRunner) else 0.5

    def rows() -> list[dict[str, float | str]]:
        settle_s = series.slo_s + report_lag_s
        found = live_rows(list(watch.scrapes), series.seconds, timeline(), time.time(), settle_s)
        return [table_row(row) for row in found]

    web_ui.template_args["extended_tabs"] = [{"title": tab_title(run_labels), "key": LIVE_TAB}]
    web_ui.template_args["extended_tables"] = [
        {"key": LIVE_TAB, "structure": [{"key": key, "title": title} for key, title in COLUMNS]}
    ]
    web_ui.app.before_request(lambda: _check_swarm_form(environment))
    web_ui.app.after_request(lambda response: _add_live_rows(response, watch, rows))


def _check_swarm_form(environment: Environment) -> Response | None:
    if request.method != "POST" or not request.path.endswith("/swarm"):
        return None
    assert environment.parsed_options is not None
    problem = form_problem(environment.parsed_options, request.form)
    if problem is None:
        return None
    logger.error("brink: the web UI's form was refused: %s", problem)
    return jsonify({"success": False, "message": problem, "host": environment.host})


def _add_live_rows(
    response: Response, watch: ServiceWatch, rows: Callable[[], list[dict[str, float | str]]]
) -> Response:
    if not request.path.endswith("/stats/requests") or response.status_code != 200:
        return response
    watch.watched_at = time.monotonic()
    report = response.get_json()
    report["extended_stats"] = [{"key": LIVE_TAB, "data": rows()}]
    response.set_data(json.dumps(report))
    return response
