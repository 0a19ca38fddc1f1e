"""brink's Postgres exporter against the session's real Postgres: metrics, lock waits, outages."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import asyncpg
import httpx2
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from demo_service.pg_exporter import APPLICATION_NAME, create_app
from demo_service.schema import ensure_schema
from demo_service.settings import DatabaseSettings, PgExporterSettings, Settings
from loadtests.native.postgres import PrivatePostgres
from loadtests.native.process import ManagedProcess, free_port
from tests.support import eventually

pytestmark = pytest.mark.integration

QUERIES_YAML = Path(__file__).parents[2] / "docker" / "postgres-exporter-queries.yaml"
LOCKED_ITEM = 977  # only this test locks it; it never changes the row

COMMITS = "pg_stat_database_xact_commit_total"  # as the parser names it (OpenMetrics-style)

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def _settings(dsn: str, scrape_timeout_s: float = 1.5) -> Settings:
    return Settings(
        db=DatabaseSettings(dsn=dsn),
        pg_exporter=PgExporterSettings(scrape_timeout_s=scrape_timeout_s),
    )


@asynccontextmanager
async def _exporter(settings: Settings) -> AsyncIterator[httpx2.AsyncClient]:
    """The exporter in-process (its lifespan included), reached through ASGI."""
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx2.ASGITransport(app=app)
        async with httpx2.AsyncClient(transport=transport, base_url="http://pg-exporter") as client:
            yield client


async def _scrape(client: httpx2.AsyncClient) -> tuple[str, Samples]:
    response = await client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    samples = {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }
    return response.text, samples


def _value(samples: Samples, name: str, **labels: str) -> float:
    return samples[(name, frozenset(labels.items()))]


def _by_database(samples: Samples, name: str) -> dict[str, float]:
    return {dict(labels)["datname"]: v for (n, labels), v in samples.items() if n == name}


def _wire_names(text: str) -> set[str]:
    """Sample names as written (the parser renames counters ``<name>_total``, OpenMetrics-style)."""
    return {line.split("{")[0].split(" ")[0] for line in text.splitlines() if line[:1] != "#"}


@pytest.fixture(scope="module")
async def dsn(postgres: PrivatePostgres) -> str:
    """The session's Postgres with brink's schema (as the demo service creates it)."""
    connection = await asyncpg.connect(postgres.dsn)
    try:
        await ensure_schema(connection, DatabaseSettings(dsn=postgres.dsn))
    finally:
        await connection.close()
    return postgres.dsn


async def test_exports_postgres_exporter_names_and_types(dsn: str) -> None:
    async with _exporter(_settings(dsn)) as client:
        text, samples = await _scrape(client)
    assert _value(samples, "pg_up") == 1
    assert _wire_names(text) == {
        "pg_up",
        "pg_stat_activity_count",
        "pg_locks_count",
        "pg_stat_database_xact_commit",
        "pg_stat_database_xact_rollback",
        "pg_stat_database_deadlocks",
        "brink_pg_lock_waits",
        "brink_pg_blocked_backends",
    }
    # Like postgres_exporter: a row for every state and lock mode, zeros included.
    states = {dict(labels)["state"] for name, labels in samples if name == "pg_stat_activity_count"}
    assert {"active", "idle", "idle in transaction"} <= states
    modes = {dict(labels)["mode"] for name, labels in samples if name == "pg_locks_count"}
    assert len(modes) == 9
    assert {"rowexclusivelock", "sharelock", "accesssharelock"} <= modes
    assert _value(samples, "pg_stat_activity_count", datname="brink", state="disabled") == 0
    # The counters keep postgres_exporter's names (no _total) and its counter type.
    for counter in ("xact_commit", "xact_rollback", "deadlocks"):
        assert f"# TYPE pg_stat_database_{counter} counter" in text
    assert all({"datid", "datname"} == {k for k, _ in ls} for (n, ls) in samples if "xact" in n)
    assert _by_database(samples, COMMITS)["brink"] > 0
    assert "# TYPE brink_pg_lock_waits gauge" in text


async def test_own_connection_and_counters_move(dsn: str) -> None:
    async with _exporter(_settings(dsn)) as client:
        _, before = await _scrape(client)
        connection = await asyncpg.connect(dsn)
        try:
            for _ in range(5):
                await connection.execute("SELECT 1")
            name = await connection.fetchval(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1",
                APPLICATION_NAME,
            )
            assert name == 1  # one connection of its own, kept between scrapes
        finally:
            await connection.close()

        async def commits_grew() -> bool:
            _, after = await _scrape(client)
            return _by_database(after, COMMITS)["brink"] > _by_database(before, COMMITS)["brink"]

        # Statistics reach pg_stat_database when a backend reports them (about every second).
        await eventually(commits_grew, timeout_s=10, what="xact_commit to grow")


async def test_a_row_lock_wait_shows_as_lock_wait_and_blocked_backend(dsn: str) -> None:
    holder = await asyncpg.connect(dsn)
    waiter = await asyncpg.connect(dsn)
    waiting: asyncio.Task[str] | None = None
    try:
        await waiter.execute("SET lock_timeout = '30s'")  # never hangs the suite
        async with _exporter(_settings(dsn)) as client:
            _, idle = await _scrape(client)
            assert _value(idle, "brink_pg_blocked_backends") == 0
            transaction = holder.transaction()
            await transaction.start()
            await holder.execute("SELECT id FROM items WHERE id = $1 FOR UPDATE", LOCKED_ITEM)
            waiting = asyncio.create_task(
                waiter.execute(f"SELECT id FROM items WHERE id = {LOCKED_ITEM} FOR UPDATE")
            )

            async def blocked() -> bool:
                _, samples = await _scrape(client)
                return (
                    _value(samples, "brink_pg_lock_waits") >= 1
                    and _value(samples, "brink_pg_blocked_backends") >= 1
                )

            await eventually(blocked, timeout_s=10, what="the lock wait to show")
            # The same SQL that postgres_exporter runs in Compose sees it too.
            query = yaml.safe_load(QUERIES_YAML.read_text())["brink_pg"]["query"]
            row = await holder.fetchrow(query)
            assert row is not None
            assert row["lock_waits"] >= 1
            assert row["blocked_backends"] >= 1

            await transaction.rollback()
            await asyncio.wait_for(waiting, timeout=10)

            async def released() -> bool:
                _, samples = await _scrape(client)
                return _value(samples, "brink_pg_blocked_backends") == 0

            await eventually(released, timeout_s=10, what="the lock wait to end")
    finally:
        if waiting is not None and not waiting.done():
            waiting.cancel()
        await holder.close()
        await waiter.close()


async def test_unreachable_postgres_is_pg_up_0_and_nothing_else() -> None:
    nowhere = f"postgresql://brink@127.0.0.1:{free_port()}/brink"
    async with _exporter(_settings(nowhere, scrape_timeout_s=1.0)) as client:
        for _ in range(2):  # and it keeps answering
            text, samples = await _scrape(client)
            assert samples == {("pg_up", frozenset()): 0.0}
            assert text.count("# TYPE") == 1


async def test_unresponsive_postgres_is_pg_up_0_within_the_budget() -> None:
    """A listener that accepts but never speaks (a stalled server): the scrape still ends."""
    held: list[asyncio.StreamWriter] = []

    async def accept_and_stay_silent(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    server = await asyncio.start_server(accept_and_stay_silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        settings = _settings(f"postgresql://brink@127.0.0.1:{port}/brink", scrape_timeout_s=0.3)
        async with _exporter(settings) as client:
            started = asyncio.get_running_loop().time()
            _, samples = await _scrape(client)
            assert asyncio.get_running_loop().time() - started < 2
            assert samples == {("pg_up", frozenset()): 0.0}
    finally:
        for writer in held:
            writer.close()
        server.close()


async def test_reconnects_after_its_connection_is_killed(dsn: str) -> None:
    """Killed mid-idle, then scraped at once or after the client saw the end: still pg_up 1."""
    find = "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1"
    kill = (
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = $1"
    )
    admin = await asyncpg.connect(dsn)
    try:
        async with _exporter(_settings(dsn)) as client:
            for wait_until_gone in (False, True, False, True):
                _, samples = await _scrape(client)
                assert _value(samples, "pg_up") == 1
                assert await admin.fetchval(kill, APPLICATION_NAME) == 1
                if wait_until_gone:

                    async def gone() -> bool:
                        return bool(await admin.fetchval(find, APPLICATION_NAME) == 0)

                    await eventually(gone, timeout_s=10, what="the killed backend to exit")
                _, samples = await _scrape(client)
                assert _value(samples, "pg_up") == 1  # a fresh connection, within the same scrape
    finally:
        await admin.close()


def test_runs_as_a_module_on_its_settings(postgres: PrivatePostgres, tmp_path: Path) -> None:
    port = free_port()
    env = {"BRINK_DB__DSN": postgres.dsn, "BRINK_PG_EXPORTER__PORT": str(port)}
    process = ManagedProcess.python_module(
        "pg exporter", "demo_service.pg_exporter", tmp_path / "pg_exporter.log", env
    )
    process.start()
    try:
        base_url = f"http://127.0.0.1:{port}"
        process.wait_http_ready(base_url + "/healthz")
        response = httpx2.get(base_url + "/metrics", timeout=10)
        assert response.status_code == 200
        assert "\npg_up 1.0\n" in "\n" + response.text
    finally:
        process.stop()
