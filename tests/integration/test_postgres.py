"""PrivatePostgres against the real server binaries: lifecycle, clean-up and fault helpers."""

from __future__ import annotations

import os
import socket
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest

from loadtests.native import _binaries
from loadtests.native._binaries import PgBinaries, alive
from loadtests.native.postgres import NON_DURABLE_SETTINGS, PostgresError, PrivatePostgres
from loadtests.native.process import free_port, port_is_free

pytestmark = pytest.mark.integration

CONNECTION_LOST = (asyncpg.PostgresError, asyncpg.InterfaceError, OSError)


def processes_using(data_dir: Path) -> list[int]:
    """Live processes whose command line names ``data_dir`` (the postmaster does)."""
    found = []
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if str(data_dir) in cmdline and alive(int(proc.name)):
            found.append(int(proc.name))
    return found


def assert_gone(temp_dir: Path, pids: list[int], port: int) -> None:
    assert not temp_dir.exists()
    assert processes_using(temp_dir / "data") == []
    assert [pid for pid in pids if alive(pid)] == [], "postgres processes outlived stop()"
    assert port_is_free(port)


async def fetch(dsn: str, query: str, limit_s: float = 5.0) -> object:
    conn = await asyncpg.connect(dsn, timeout=limit_s)
    try:
        return await conn.fetchval(query, timeout=limit_s)
    finally:
        await conn.close()


@pytest.fixture
def pg() -> Iterator[PrivatePostgres]:
    with PrivatePostgres(port=free_port()) as server:
        yield server


async def test_dsn_reaches_database_brink_durable_by_default(pg: PrivatePostgres) -> None:
    conn = await asyncpg.connect(pg.dsn, timeout=5)
    try:
        row = await conn.fetchrow(
            "SELECT current_user, current_database(), inet_server_port(),"
            " current_setting('fsync') AS fsync,"
            " current_setting('synchronous_commit') AS sync_commit,"
            " current_setting('full_page_writes') AS fpw,"
            " current_setting('max_connections') AS max_conn,"
            " current_setting('listen_addresses') AS listen,"
            " pg_encoding_to_char(encoding) AS enc FROM pg_database WHERE datname = 'brink'"
        )
    finally:
        await conn.close()
    assert row is not None
    assert tuple(row) == (
        "brink",
        "brink",
        pg.port,
        "on",
        "on",
        "on",
        "200",
        "127.0.0.1",
        "UTF8",
    )
    assert pg.dsn == f"postgresql://brink@127.0.0.1:{pg.port}/brink"


async def test_non_durable_is_an_explicit_opt_in() -> None:
    with PrivatePostgres(port=free_port(), durable=False) as server:
        for name in NON_DURABLE_SETTINGS:
            assert await fetch(server.dsn, f"SELECT current_setting('{name}')") == "off"


async def test_stop_leaves_no_process_and_no_temp_dir() -> None:
    server = PrivatePostgres(port=free_port()).start()
    temp_dir, pids = server.temp_dir, server.processes()
    assert temp_dir is not None
    assert temp_dir.name.startswith("brink-pg-")
    assert processes_using(temp_dir / "data") == [server.pid]
    assert len(pids) > 3  # postmaster, checkpointer, walwriter, ...
    assert await fetch(server.dsn, "SELECT 1") == 1

    server.stop()
    server.stop()  # idempotent

    assert server.temp_dir is None
    assert not server.running()
    assert_gone(temp_dir, pids, server.port)


def test_data_dir_is_private_to_the_server_user(pg: PrivatePostgres) -> None:
    info = pg.data_dir.stat()
    assert stat.S_IMODE(info.st_mode) == 0o700
    user = _binaries.server_user()
    assert info.st_uid == (os.geteuid() if user is None else user.pw_uid)


def test_refuses_a_taken_port_naming_it() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        server = PrivatePostgres(port=port)
        with pytest.raises(PostgresError, match=f"port {port} .* already in use"):
            server.start()
    assert server.temp_dir is None


def test_failed_start_removes_its_temp_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = tmp_path / "bin"
    fake.mkdir()
    for tool in _binaries.REQUIRED_TOOLS:
        (fake / tool).write_text("#!/bin/sh\necho 'broken on purpose' >&2\nexit 3\n")
        (fake / tool).chmod(0o755)
    temp_root = tmp_path / "tmp"
    temp_root.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temp_root))

    server = PrivatePostgres(port=free_port(), binaries=PgBinaries(fake, "path"))
    with pytest.raises(PostgresError, match=r"initdb .* failed"):
        server.start()
    assert list(temp_root.iterdir()) == []
    assert server.temp_dir is None


async def test_restart_drops_connections_and_keeps_data(pg: PrivatePostgres) -> None:
    conn = await asyncpg.connect(pg.dsn, timeout=5)
    await conn.execute("CREATE TABLE kept (n int); INSERT INTO kept VALUES (42)")
    old_pid = pg.pid

    pg.restart()

    with pytest.raises(CONNECTION_LOST):
        await conn.fetchval("SELECT 1", timeout=5)
    conn.terminate()
    assert pg.pid != old_pid
    assert pg.running()
    assert await fetch(pg.dsn, "SELECT n FROM kept") == 42


async def test_kill_crashes_it_and_start_again_recovers_the_same_data() -> None:
    with PrivatePostgres(port=free_port()) as server:
        await fetch(server.dsn, "CREATE TABLE survivor AS SELECT 7 AS n")
        old = server.processes()

        server.kill()

        assert not server.running()
        with pytest.raises(ConnectionRefusedError):
            await fetch(server.dsn, "SELECT 1", limit_s=2)

        server.start_again()

        assert server.running()
        assert [pid for pid in old if alive(pid)] == []
        assert await fetch(server.dsn, "SELECT n FROM survivor") == 7
        assert "automatic recovery in progress" in server.log_tail(50)


async def test_pause_hangs_queries_and_resume_serves_again(pg: PrivatePostgres) -> None:
    conn = await asyncpg.connect(pg.dsn, timeout=5)
    try:
        assert await conn.fetchval("SELECT 1", timeout=5) == 1

        pg.pause()
        try:
            with pytest.raises(TimeoutError):
                await conn.fetchval("SELECT 2", timeout=0.5)
            with pytest.raises(TimeoutError):
                await asyncpg.connect(pg.dsn, timeout=0.5)
            assert pg.running()  # stalled, not dead
        finally:
            pg.resume()

        assert await fetch(pg.dsn, "SELECT 3") == 3
    finally:
        conn.terminate()


def test_stop_also_ends_a_paused_server() -> None:
    server = PrivatePostgres(port=free_port()).start()
    temp_dir, pids = server.temp_dir, server.processes()
    assert temp_dir is not None
    server.pause()
    server.stop()
    assert_gone(temp_dir, pids, server.port)


def test_find_binaries_prefers_path_then_newest_system_then_pgserver(tmp_path: Path) -> None:
    def fake_bin(directory: Path, tools: tuple[str, ...] = _binaries.REQUIRED_TOOLS) -> Path:
        directory.mkdir(parents=True)
        for tool in tools:
            (directory / tool).write_text("#!/bin/sh\n")
            (directory / tool).chmod(0o755)
        return directory

    real = fake_bin(tmp_path / "opt" / "pg" / "bin")
    on_path = tmp_path / "path"
    on_path.mkdir()
    for tool in ("pg_ctl", "initdb"):
        (on_path / tool).symlink_to(real / tool)
    system_root = tmp_path / "usr-lib-postgresql"
    fake_bin(system_root / "9.6" / "bin")
    newest_complete = fake_bin(system_root / "15" / "bin")
    fake_bin(system_root / "16" / "bin", tools=("pg_ctl", "initdb"))  # incomplete: skipped
    empty = tmp_path / "empty"
    empty.mkdir()

    assert _binaries.find_binaries(str(on_path), system_root) == PgBinaries(real, "path")
    assert _binaries.find_binaries(str(empty), system_root) == PgBinaries(newest_complete, "system")
    fallback = _binaries.find_binaries(str(empty), empty)
    assert fallback is not None
    assert fallback.source == "pgserver"


async def test_pgserver_wheel_fallback_has_the_same_interface() -> None:
    binaries = _binaries.pgserver()
    if binaries is None:
        pytest.skip("the pgserver wheel is not installed")
    server = PrivatePostgres(port=free_port(), binaries=binaries).start()
    temp_dir, pids = server.temp_dir, server.processes()
    assert temp_dir is not None
    try:
        version = await fetch(server.dsn, "SHOW server_version_num")
    finally:
        server.stop()
    assert str(version).startswith("16")
    assert_gone(temp_dir, pids, server.port)
