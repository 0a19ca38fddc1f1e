"""The service's feedback loop second by second: the figures of brink's live tab in Locust.

Pure: each :class:`LiveRow` covers the window between two consecutive scrapes of the service's
``/metrics`` (about a second), read with the ramp's own arithmetic
(:func:`loadtests.scrape.server_window`: means from counters by Little's law, since a gauge
read once a second misleads), next to the generator's per-second series for the same seconds
and the stage the profile was in.

The client's figures for a second are final only once every request started in it has either
answered or outlived the SLO, and has been reported to the master (workers report every few
seconds): until ``settle_s`` after the second they show as pending, never as a dip.
"""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from loadtests.loadgen_metrics import RUN_LABELS
from loadtests.scrape import Scrape, increase, server_window
from loadtests.series import Second, window

LIVE_TAB = "brink-live"
"""The tab's key in Locust's web UI: its table and its rows in ``extended_stats``."""
MAX_WINDOW_S = 5.0
"""A longer gap between two scrapes (missed scrapes, an idle spell between runs) is no row."""
PENDING = "…"
BREAKER_STATES = ("closed", "half-open", "open")
"""``brink_breaker_state``'s values, in order."""
COLUMNS: tuple[tuple[str, str], ...] = (
    ("name", "time"),
    ("stage", "stage"),
    ("target_rps", "target req/s"),
    ("offered_rps", "offered req/s"),
    ("served_rps", "service req/s"),
    ("goodput_rps", "goodput req/s"),
    ("in_flight", "in flight"),
    ("pool_in_use", "pool in use"),
    ("pool_size", "pool size"),
    ("pool_waiters", "pool waiters"),
    ("db_hold_ms", "DB hold ms"),
    ("acquire_wait_ms", "pool wait ms"),
    ("external_rps", "slow API calls/s"),
    ("retries_rps", "service retries/s"),
    ("shed_rps", "shed/s"),
    ("breaker", "breaker"),
    ("cpu", "service CPU"),
)
"""The table's columns: row key and title (the row's ``name`` is its time, Locust's sort key)."""


@dataclass(frozen=True)
class ClientFigures:
    """The generator's side of a window: whole seconds of the per-second series."""

    offered_rps: float
    goodput_rps: float


@dataclass(frozen=True)
class LiveRow:
    """One window between two scrapes of the service."""

    at: float
    """The window's end (the later scrape), wall clock."""
    stage: str
    target_rps: float | None
    served_rps: float
    in_flight: float
    pool_in_use: float
    pool_size: int
    pool_waiters: float
    db_hold_s: float | None
    """Mean time a connection stayed checked out; None without any checkout."""
    acquire_wait_s: float
    external_rps: float
    retries_rps: float
    shed_rps: float
    breaker: str
    cpu: float
    client: ClientFigures | None
    """None while the window's seconds are not final yet (or the window holds none)."""


def tab_title(run_labels: Mapping[str, str]) -> str:
    """The tab's title, naming the scenario and phase when the generator was given them."""
    named = [run_labels[key] for key in RUN_LABELS if run_labels.get(key)]
    return f"brink live: {' / '.join(named)}" if named else "brink live"


def stage_at(timeline: Sequence[Mapping[str, Any]], at: float) -> tuple[str, float | None]:
    """The stage in force at ``at``: its name and target rate; idle before the first one."""
    current: tuple[str, float | None] = ("idle", None)
    for entry in timeline:
        if entry["start"] > at:
            break
        current = (str(entry["name"]), float(entry["rps"]))
    return current


def breaker(scrape: Scrape) -> str:
    """The worst breaker state, with the targets in it; ``none`` without any breaker."""
    states: dict[str, float] = {
        dict(labels).get("target", "?"): value
        for (name, labels), value in scrape.values.items()
        if name == "brink_breaker_state"
    }
    if not states:
        return "none"
    worst = max(states.values())
    name = BREAKER_STATES[min(max(int(worst), 0), len(BREAKER_STATES) - 1)]
    if worst == 0:
        return name
    return f"{name} ({', '.join(sorted(t for t, v in states.items() if v == worst))})"


def client_seconds(first_at: float, last_at: float) -> tuple[int, int]:
    """The whole seconds ``[start, end)`` whose middle falls in the window, at least one:
    windows that follow each other share no second (unless one is under a second long)."""
    start = math.ceil(first_at - 0.5)
    return start, max(math.ceil(last_at - 0.5), start + 1)


def client_figures(
    seconds: Mapping[int, Second], first_at: float, last_at: float, final_before: float
) -> ClientFigures | None:
    """The generator's rates over the window's seconds, if every one ended before
    ``final_before``."""
    start, end = client_seconds(first_at, last_at)
    if end > final_before:
        return None
    stats = window(seconds, start, end)
    return ClientFigures(offered_rps=stats.offered_rps, goodput_rps=stats.goodput_rps)


def live_row(
    first: Scrape,
    last: Scrape,
    seconds: Mapping[int, Second],
    timeline: Sequence[Mapping[str, Any]],
    final_before: float,
) -> LiveRow | None:
    """The row for the window between two scrapes; None if it is too short or too long."""
    elapsed = last.at - first.at
    server = server_window([first, last], first.at, last.at)
    if server is None or elapsed > MAX_WINDOW_S:
        return None
    checkouts = increase(first, last, "brink_db_pool_acquisitions_total")
    busy = increase(first, last, "brink_db_connection_busy_seconds_total")
    stage, target = stage_at(timeline, last.at)
    return LiveRow(
        at=last.at,
        stage=stage,
        target_rps=target,
        served_rps=server.throughput_rps,
        in_flight=server.in_flight,
        pool_in_use=server.pool_in_use,
        pool_size=server.pool_size,
        pool_waiters=server.pool_waiters,
        db_hold_s=busy / checkouts if checkouts > 0 else None,
        acquire_wait_s=server.acquire_wait_s,
        external_rps=increase(first, last, "brink_external_requests_total") / elapsed,
        retries_rps=increase(first, last, "brink_retries_total") / elapsed,
        shed_rps=increase(first, last, "brink_shed_total") / elapsed,
        breaker=breaker(last),
        cpu=server.cpu_utilisation,
        client=client_figures(seconds, first.at, last.at, final_before),
    )


def live_rows(
    scrapes: Sequence[Scrape],
    seconds: Mapping[int, Second],
    timeline: Sequence[Mapping[str, Any]],
    now: float,
    settle_s: float,
) -> list[LiveRow]:
    """A row per window between consecutive scrapes, oldest first.

    A second's client figures count as final ``settle_s`` after it ended (see the module).
    """
    final_before = now - settle_s
    pairs = itertools.pairwise(scrapes)
    rows = (live_row(first, last, seconds, timeline, final_before) for first, last in pairs)
    return [row for row in rows if row is not None]


def table_row(row: LiveRow) -> dict[str, float | str]:
    """``row`` as the web UI's table shows it, keyed by :data:`COLUMNS`."""
    client = row.client
    return {
        "name": time.strftime("%H:%M:%S", time.localtime(row.at)),
        "stage": row.stage,
        "target_rps": "" if row.target_rps is None else round(row.target_rps, 1),
        "offered_rps": PENDING if client is None else round(client.offered_rps, 1),
        "served_rps": round(row.served_rps, 1),
        "goodput_rps": PENDING if client is None else round(client.goodput_rps, 1),
        "in_flight": round(row.in_flight, 2),
        "pool_in_use": round(row.pool_in_use, 2),
        "pool_size": row.pool_size,
        "pool_waiters": round(row.pool_waiters, 2),
        "db_hold_ms": "" if row.db_hold_s is None else round(row.db_hold_s * 1000, 1),
        "acquire_wait_ms": round(row.acquire_wait_s * 1000, 1),
        "external_rps": round(row.external_rps, 1),
        "retries_rps": round(row.retries_rps, 1),
        "shed_rps": round(row.shed_rps, 1),
        "breaker": row.breaker,
        "cpu": round(row.cpu, 2),
    }
