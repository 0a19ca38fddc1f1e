"""brink's own Postgres exporter: the Postgres signals of the dashboards, without postgres_exporter.

Run it with ``python -m demo_service.pg_exporter`` (settings from ``BRINK_*``: the database from
``BRINK_DB__DSN``, the listener from ``BRINK_PG_EXPORTER__HOST`` / ``__PORT``, 127.0.0.1:9187 by
default). Each scrape of ``/metrics`` runs a few catalog queries on the exporter's own connection,
never the service's pool, and reconnects when Postgres restarted. When Postgres cannot be read
within ``BRINK_PG_EXPORTER__SCRAPE_TIMEOUT_S`` the answer is ``pg_up 0`` and nothing else (no 500).

Names, labels and types follow prometheus-community/postgres_exporter, which Compose runs, so one
set of dashboards serves both: ``pg_up``, ``pg_stat_activity_count{datname,state}``,
``pg_locks_count{datname,mode}`` (gauges) and ``pg_stat_database_xact_commit``, ``_xact_rollback``
and ``_deadlocks{datid,datname}`` (counters named without ``_total``, as postgres_exporter does;
prometheus_client's writer would append it, hence :func:`render`). postgres_exporter 0.20 puts more
labels on ``pg_stat_activity_count`` (usename, application_name, backend_type, wait_event...):
``sum by (datname, state)`` reads both alike. Two gauges of brink's own, exported in Compose by
``docker/postgres-exporter-queries.yaml`` with the same SQL: ``brink_pg_lock_waits`` (lock requests
not granted) and ``brink_pg_blocked_backends`` (backends that ``pg_blocking_pids()`` says wait).
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import asyncpg
from fastapi import FastAPI, Request, Response
from prometheus_client import CollectorRegistry
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4
from prometheus_client.registry import Collector

from demo_service.serve import serve
from demo_service.settings import Settings, load_settings

APPLICATION_NAME = "brink-pg-exporter"
"""The exporter's ``application_name``, so its own backend is easy to spot in pg_stat_activity."""

# postgres_exporter's queries (collector/pg_stat_activity.go, pg_locks.go): every database gets a
# row for every state and lock mode, zeros included, so series do not appear and vanish.
ACTIVITY_QUERY = """
SELECT d.datname, s.state, COALESCE(a.count, 0) AS count
FROM pg_database AS d
CROSS JOIN (VALUES ('active'), ('idle'), ('idle in transaction'),
                   ('idle in transaction (aborted)'), ('fastpath function call'), ('disabled'))
           AS s (state)
LEFT JOIN (SELECT datname, state, count(*) AS count
           FROM pg_stat_activity
           WHERE pid <> pg_backend_pid()
           GROUP BY datname, state) AS a
       ON a.datname = d.datname AND a.state = s.state
ORDER BY 1, 2
"""
LOCKS_QUERY = """
SELECT d.datname, m.mode, COALESCE(l.count, 0) AS count
FROM (VALUES ('accesssharelock'), ('rowsharelock'), ('rowexclusivelock'),
             ('shareupdateexclusivelock'), ('sharelock'), ('sharerowexclusivelock'),
             ('exclusivelock'), ('accessexclusivelock'), ('sireadlock')) AS m (mode)
CROSS JOIN pg_database AS d
LEFT JOIN (SELECT database, lower(mode) AS mode, count(*) AS count
           FROM pg_locks
           WHERE database IS NOT NULL
           GROUP BY database, lower(mode)) AS l
       ON l.mode = m.mode AND l.database = d.oid
ORDER BY 1, 2
"""
DATABASE_QUERY = """
SELECT datid::text AS datid, datname, xact_commit, xact_rollback, deadlocks
FROM pg_stat_database
WHERE datname IS NOT NULL
ORDER BY datname
"""
# The same SQL is in docker/postgres-exporter-queries.yaml (a test keeps the two equal).
WAITS_QUERY = """
SELECT
  (SELECT count(*) FROM pg_locks WHERE NOT granted) AS lock_waits,
  (SELECT count(*) FROM pg_stat_activity
   WHERE pid <> pg_backend_pid() AND cardinality(pg_blocking_pids(pid)) > 0) AS blocked_backends
"""

_COUNTERS = (
    ("xact_commit", "Number of transactions in this database that have been committed"),
    ("xact_rollback", "Number of transactions in this database that have been rolled back"),
    ("deadlocks", "Number of deadlocks detected in this database"),
)
_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DatabaseCounters:
    """One row of pg_stat_database: the counters by column name."""

    datid: str
    datname: str
    counters: dict[str, int]


@dataclass(frozen=True)
class PgSnapshot:
    """What one scrape read from Postgres."""

    activity: list[tuple[str, str, int]]
    """``(datname, state, connections)``."""
    locks: list[tuple[str, str, int]]
    """``(datname, mode, locks)``."""
    databases: list[DatabaseCounters]
    lock_waits: int
    blocked_backends: int


async def read_snapshot(connection: asyncpg.Connection) -> PgSnapshot:
    """Run the exporter's queries on ``connection``."""
    activity = await connection.fetch(ACTIVITY_QUERY)
    locks = await connection.fetch(LOCKS_QUERY)
    databases = await connection.fetch(DATABASE_QUERY)
    waits = await connection.fetchrow(WAITS_QUERY)
    assert waits is not None  # a SELECT without FROM always returns its one row
    return PgSnapshot(
        activity=[(row["datname"], row["state"], row["count"]) for row in activity],
        locks=[(row["datname"], row["mode"], row["count"]) for row in locks],
        databases=[
            DatabaseCounters(row["datid"], row["datname"], {c: row[c] for c, _ in _COUNTERS})
            for row in databases
        ],
        lock_waits=waits["lock_waits"],
        blocked_backends=waits["blocked_backends"],
    )


def families(snapshot: PgSnapshot | None) -> Iterator[Metric]:
    """The families of ``snapshot``; ``None`` (Postgres unreadable) gives ``pg_up 0`` only."""
    yield GaugeMetricFamily(
        "pg_up",
        "Whether the last scrape could read PostgreSQL (1 for yes, 0 for no).",
        value=0 if snapshot is None else 1,
    )
    if snapshot is None:
        return
    activity = GaugeMetricFamily(
        "pg_stat_activity_count",
        "number of connections in this state",
        labels=["datname", "state"],
    )
    for datname, state, count in snapshot.activity:
        activity.add_metric([datname, state], count)
    yield activity
    locks = GaugeMetricFamily("pg_locks_count", "Number of locks", labels=["datname", "mode"])
    for datname, mode, count in snapshot.locks:
        locks.add_metric([datname, mode], count)
    yield locks
    for column, documentation in _COUNTERS:
        name = f"pg_stat_database_{column}"
        counter = Metric(name, documentation, "counter")
        for db in snapshot.databases:
            labels = {"datid": db.datid, "datname": db.datname}
            counter.add_sample(name, labels, db.counters[column])
        yield counter
    yield GaugeMetricFamily(
        "brink_pg_lock_waits",
        "Lock requests not granted now (pg_locks where not granted).",
        value=snapshot.lock_waits,
    )
    yield GaugeMetricFamily(
        "brink_pg_blocked_backends",
        "Backends waiting for a lock another backend holds (non-empty pg_blocking_pids).",
        value=snapshot.blocked_backends,
    )


class PgCollector(Collector):
    """Serves the families of the snapshot the current scrape has just read."""

    def __init__(self) -> None:
        self.snapshot: PgSnapshot | None = None

    def collect(self) -> Iterator[Metric]:
        return families(self.snapshot)


def _escape(value: str) -> str:
    return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")


def _number(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value))


def render(registry: Collector) -> bytes:
    """The text format (0.0.4) with every sample under its own name, as Go clients write it.

    prometheus_client's ``generate_latest`` names every counter family ``<name>_total``, which
    would not match postgres_exporter's ``pg_stat_database_xact_commit``.
    """
    lines = []
    for family in registry.collect():
        kind = "untyped" if family.type == "unknown" else family.type
        help_text = family.documentation.replace("\\", r"\\").replace("\n", r"\n")
        lines += [f"# HELP {family.name} {help_text}", f"# TYPE {family.name} {kind}"]
        for sample in family.samples:
            labels = ",".join(f'{key}="{_escape(value)}"' for key, value in sample.labels.items())
            selector = f"{{{labels}}}" if labels else ""
            lines.append(f"{sample.name}{selector} {_number(sample.value)}")
    return "".join(f"{line}\n" for line in lines).encode()


class PgSource:
    """The exporter's own connection: opened when needed, dropped on any failure."""

    def __init__(self, dsn: str, budget_s: float) -> None:
        self._dsn = dsn
        self._budget_s = budget_s
        self._connection: asyncpg.Connection | None = None
        self._lock = asyncio.Lock()  # one connection runs one query at a time
        self._failing = False

    async def read(self) -> PgSnapshot | None:
        """A snapshot, or ``None`` when Postgres cannot be read within the budget."""
        async with self._lock:
            try:
                async with asyncio.timeout(self._budget_s):
                    snapshot = await self._read()
            except Exception as exc:  # down, restarting, refusing us, too slow: all are pg_up 0
                if not self._failing:  # once per outage, not once per scrape
                    _log.warning("cannot read Postgres, pg_up 0 until it can: %r", exc)
                self._failing = True
                self._drop()
                return None
            self._failing = False
            return snapshot

    async def _read(self) -> PgSnapshot:
        if self._connection is not None and not self._connection.is_closed():
            try:
                return await read_snapshot(self._connection)
            except Exception:  # e.g. Postgres restarted or ended our backend: reconnect once
                # (a backend ended while idle can surface as asyncpg's InternalClientError)
                self._drop()
        self._connection = await asyncpg.connect(
            self._dsn, server_settings={"application_name": APPLICATION_NAME}
        )
        return await read_snapshot(self._connection)

    def _drop(self) -> None:
        if self._connection is not None:
            self._connection.terminate()  # no goodbye: the server may be gone
            self._connection = None

    async def close(self) -> None:
        """Close the connection, if one is open."""
        async with self._lock:
            connection, self._connection = self._connection, None
            if connection is not None:
                try:
                    await connection.close(timeout=self._budget_s)
                except Exception:
                    connection.terminate()


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the exporter for ``settings`` (read from the environment when omitted)."""
    settings = settings or load_settings()
    collector = PgCollector()
    registry = CollectorRegistry()
    registry.register(collector)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        source = PgSource(settings.db.dsn, settings.pg_exporter.scrape_timeout_s)
        app.state.pg_source = source
        try:
            yield
        finally:
            await source.close()

    app = FastAPI(
        title="brink Postgres exporter",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )

    @app.get("/metrics")
    async def metrics(request: Request) -> Response:
        source: PgSource = request.app.state.pg_source
        collector.snapshot = await source.read()
        return Response(render(registry), media_type=CONTENT_TYPE_PLAIN_0_0_4)

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return app


def main() -> None:
    """``python -m demo_service.pg_exporter``: exit 2 with one line on a bad setting."""
    serve(
        "brink pg exporter",
        create_app,
        lambda settings: (settings.pg_exporter.host, settings.pg_exporter.port),
    )


if __name__ == "__main__":
    main()
