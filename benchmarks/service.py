"""One fresh demo-service process per measurement, and what we read from its ``/metrics``."""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx2
from prometheus_client.parser import text_string_to_metric_families

from loadtests.native.process import ManagedProcess, free_port

HOST = "127.0.0.1"
READY_TIMEOUT_S = 30.0
DRAIN_TIMEOUT_S = 10.0
ORDERS_ROUTE = "/orders"


@dataclass(frozen=True)
class Service:
    """A running demo service: where it listens and its pid (for CPU readings)."""

    base_url: str
    pid: int


@dataclass(frozen=True)
class PoolCounters:
    """The pool counters of one route: checkouts and the seconds connections were held."""

    acquisitions: float
    busy_s: float
    at: float
    """``time.monotonic()`` of the scrape."""

    def hold_since(self, earlier: PoolCounters) -> float:
        """Mean hold time per checkout between two scrapes (``Δbusy / Δacquisitions``)."""
        checkouts = self.acquisitions - earlier.acquisitions
        if checkouts <= 0:
            raise RuntimeError("no pool checkouts between the two scrapes")
        return (self.busy_s - earlier.busy_s) / checkouts

    def utilisation_since(self, earlier: PoolCounters, pool: int) -> float:
        """Mean fraction of ``pool`` connections checked out between two scrapes."""
        return (self.busy_s - earlier.busy_s) / (pool * (self.at - earlier.at))


@contextmanager
def running_service(
    name: str, dsn: str, log_dir: Path, settings: Mapping[str, str]
) -> Iterator[Service]:
    """Start ``python -m demo_service`` with ``settings`` (``BRINK_*``), ready; stop it after.

    ``BRINK_*`` variables of our own environment are not passed on, so nothing but
    ``settings`` changes what is measured.
    """
    port = free_port(HOST)
    env = {
        "BRINK_SERVER__HOST": HOST,
        "BRINK_SERVER__PORT": str(port),
        "BRINK_DB__DSN": dsn,
        **settings,
    }
    process = ManagedProcess.python_module(name, "demo_service", log_dir / f"{name}.log", env)
    process.env = {k: v for k, v in process.env.items() if not k.startswith("BRINK_") or k in env}
    base_url = f"http://{HOST}:{port}"
    try:
        process.start()
        process.wait_http_ready(f"{base_url}/readyz", timeout_s=READY_TIMEOUT_S)
        yield Service(base_url, process.pid)
    finally:
        process.stop()


def pool_counters(client: httpx2.Client, route: str = ORDERS_ROUTE) -> PoolCounters:
    """Scrape ``/metrics`` for ``route``'s pool acquisitions and busy seconds."""
    at = time.monotonic()
    text = _scrape(client)
    wanted = {
        "brink_db_pool_acquisitions_total": 0.0,
        "brink_db_connection_busy_seconds_total": 0.0,
    }
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name in wanted and sample.labels.get("route") == route:
                wanted[sample.name] = float(sample.value)
    return PoolCounters(
        acquisitions=wanted["brink_db_pool_acquisitions_total"],
        busy_s=wanted["brink_db_connection_busy_seconds_total"],
        at=at,
    )


def wait_drained(client: httpx2.Client) -> None:
    """Poll until no HTTP request but the scrape itself is in flight and the pool is idle.

    A load run ends on the client side; requests the service had queued still finish after.
    """
    deadline = time.monotonic() + DRAIN_TIMEOUT_S
    while True:
        in_flight, in_use = _in_flight_and_in_use(_scrape(client))
        if in_flight <= 1 and in_use == 0:  # 1: this scrape
            return
        if time.monotonic() > deadline:
            raise RuntimeError(
                f"service still busy {DRAIN_TIMEOUT_S:.0f} s after the load stopped "
                f"({in_flight:.0f} requests in flight, {in_use:.0f} connections in use)"
            )
        time.sleep(0.05)


def _in_flight_and_in_use(text: str) -> tuple[float, float]:
    in_flight = in_use = 0.0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "brink_http_requests_in_flight":
                in_flight += sample.value
            elif sample.name == "brink_db_pool_in_use":
                in_use = sample.value
    return in_flight, in_use


def probe_hold(client: httpx2.Client, orders: int) -> float:
    """Place ``orders`` orders one after another; the mean pool hold per order, in seconds."""
    before = pool_counters(client)
    for _ in range(orders):
        response = client.post(
            "/orders",
            json={"item_id": 1 + int.from_bytes(os.urandom(2)) % 1000, "quantity": 1},
            headers={"Idempotency-Key": str(uuid.uuid4())},
        )
        if response.status_code != 201:
            raise RuntimeError(f"probe order failed: HTTP {response.status_code} {response.text}")
    return pool_counters(client).hold_since(before)


def _scrape(client: httpx2.Client) -> str:
    response = client.get("/metrics")
    response.raise_for_status()
    return response.text
