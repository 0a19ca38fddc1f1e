"""Open-model load in Locust: arrivals on a clock, whatever the backend does.

A closed loop (each virtual user waits for its answer before sending again) slows down with
the backend and hides the collapse (coordinated omission). Here each Locust "user" is a
*dispatcher* worth a slice of the target rate: it sleeps to an absolute schedule of Poisson
arrivals and hands each arrival to its own greenlet, so a slow answer never delays the next
send. All dispatchers of a process share one :class:`ArrivalEngine`: one bounded HTTP client
pool and one in-flight cap; an arrival over the cap is dropped and counted (k6's
dropped_iterations), never silently skipped. Requests go through Locust's
``FastHttpSession``, so Locust's own statistics and web UI see every one.

With a :class:`~loadtests.ledger.LedgerWriter`, every order is logged before its first attempt
and again after each attempt, so the ledger knows what may have reached the database.
"""

from __future__ import annotations

import json
import random
import time
from typing import Any

import gevent
import gevent.pool
from geventhttpclient.client import HTTPClientPool
from locust.contrib.fasthttp import FastHttpSession
from locust.env import Environment

from loadtests.client_retry import ClientRetry
from loadtests.ledger import LedgerWriter
from loadtests.mix import Mix, RequestSpec
from loadtests.pacing import error_kind
from loadtests.series import Series


def _parsed(content: bytes | None) -> Any:
    try:
        return json.loads(content or b"null")
    except ValueError:
        return None


class ArrivalEngine:
    """Sends arrivals for every dispatcher of one generator process."""

    def __init__(
        self,
        environment: Environment,
        base_url: str,
        mix: Mix,
        series: Series,
        timeout_s: float,
        max_in_flight: int,
        seed: int | None = None,
        retry: ClientRetry | None = None,
        ledger: LedgerWriter | None = None,
    ) -> None:
        self.mix = mix
        self.ledger = ledger
        self.retry = retry or ClientRetry("none")
        self.series = series
        self.rng = random.Random(seed)
        self.timeout_s = timeout_s
        self.rate_per_dispatcher = 0.0
        self._greenlets = gevent.pool.Pool(max_in_flight)
        # One client pool for the whole process; its timeouts bound every request (a custom
        # pool ignores FastHttpUser.network_timeout, so they are passed here).
        clients = HTTPClientPool(
            concurrency=max_in_flight, network_timeout=timeout_s, connection_timeout=timeout_s
        )
        # max_retries=0: geventhttpclient's UserAgent would otherwise re-send a GET up to three
        # times on a timeout or a broken connection, unseen — every retry must be the client
        # retry policy's, counted, or "--client-retries none" would quietly be "naive".
        self.session = FastHttpSession(
            base_url,
            request_event=environment.events.request,
            user=None,
            client_pool=clients,
            max_retries=0,
        )

    @property
    def in_flight(self) -> int:
        return len(self._greenlets)

    def arrive(self) -> None:
        """One arrival: send it now, or count it dropped if the in-flight cap is reached."""
        now = time.time()
        if self._greenlets.full():
            self.series.drop(now)
            return
        self.series.arrival(now)
        self._greenlets.spawn(self._send, self.mix.next(self.rng), now)

    def _send(self, spec: RequestSpec, started: float) -> None:
        """One arrival: its attempts (the retry policy's), then one completion."""
        clock = time.perf_counter()
        self.retry.on_arrival()
        ledger, order = self.ledger, spec.order
        if ledger is not None and order is not None:
            ledger.sent(order)  # before the first attempt: it may commit whatever happens next
        attempt = 1
        while True:
            kind, status, body = self._attempt(spec)
            if ledger is not None and order is not None:
                ledger.answered(order, status, body)
            wait_s = self.retry.retry_after(kind, attempt)
            if wait_s is None:
                break
            self.series.retry(started)
            attempt += 1
            if wait_s > 0:
                gevent.sleep(wait_s)
        self.series.completion(started, time.perf_counter() - clock, kind)

    def _attempt(self, spec: RequestSpec) -> tuple[str | None, int, Any]:
        """Send ``spec`` once, within the client timeout; returns what went wrong (None if
        nothing did), status, body.

        The client pool's timeouts bound each socket operation, not the request: an answer
        that trickles in, or a pool that quietly re-sends on closed keep-alive connections,
        could outlast them many times over. A ``TimeoutError`` at the deadline looks to
        geventhttpclient like a socket timeout (it releases the connection) and to Locust like
        any failed request, so the attempt ends as a ``timeout`` on time.
        """
        deadline = gevent.Timeout(
            self.timeout_s, TimeoutError(f"timed out after {self.timeout_s:g} s")
        )
        try:
            with deadline:
                return self._attempt_once(spec)
        except TimeoutError:  # the deadline passed in our own code, after the request
            return "timeout", 0, None

    def _attempt_once(self, spec: RequestSpec) -> tuple[str | None, int, Any]:
        with self.session.request(
            spec.method,
            spec.path,
            name=spec.name,
            json=spec.json,
            headers=spec.headers,
            catch_response=True,
        ) as response:
            status = response.status_code or 0
            kind = error_kind(status, getattr(response, "error", None))
            wanted = kind is None or spec.order is not None  # the ledger reads refusals too
            body = _parsed(response.content) if status and wanted else None
            if kind is None:
                problem = spec.check(status, body)
                if problem is not None:
                    kind = "check"
                    response.failure(f"check: {problem}")
            elif status:
                response.failure(f"HTTP {status}")
        return kind, status, body

    def join(self, timeout_s: float) -> None:
        self._greenlets.join(timeout=timeout_s)
