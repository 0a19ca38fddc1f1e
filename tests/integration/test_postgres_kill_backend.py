"""``postgres.kill_backend`` on a real private Postgres: one backend SIGKILLed, as by an OOM kill.

The postmaster survives, ends every other backend, re-initialises shared memory and recovers from
the WAL; every client connection breaks, committed data stays, uncommitted data is gone. Checked
natively (:meth:`PrivatePostgres.kill_backend` and the whole chain from a schedule step to the
runner's record), and the shell script the Docker path execs in the Postgres container, run here
with ``sh`` against the same kind of server.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
from collections.abc import Callable, Iterator
from typing import TypeVar, cast

import asyncpg
import pytest

from loadtests.faults.docker_faults import KILL_BACKEND_EXITS, KILL_BACKEND_SH
from loadtests.faults.injector import CompositeInjector
from loadtests.faults.native import NativeProcessFaults
from loadtests.faults.runner import FaultRunner
from loadtests.faults.spec import FaultSchedule
from loadtests.native import _binaries
from loadtests.native._binaries import alive
from loadtests.native.postgres import PostgresError, PrivatePostgres
from loadtests.native.process import free_port
from loadtests.native.stack import NativeStack

pytestmark = pytest.mark.integration

CONNECTION_LOST = (asyncpg.PostgresError, asyncpg.InterfaceError, OSError)
RECOVERY_LIMIT_S = 10.0
"""A small database recovers in well under a second; this only bounds a broken run."""
T = TypeVar("T")


@pytest.fixture(scope="module")
def pg() -> Iterator[PrivatePostgres]:
    with PrivatePostgres(port=free_port()) as server:
        yield server


async def _clients(pg: PrivatePostgres, count: int) -> list[asyncpg.Connection]:
    return [await asyncpg.connect(pg.dsn, timeout=5) for _ in range(count)]


async def _broken(conn: asyncpg.Connection) -> bool:
    try:
        await conn.fetchval("SELECT 1", timeout=5)
    except CONNECTION_LOST:
        return True
    finally:
        conn.terminate()
    return False


async def _crashed_and_recovered(pg: PrivatePostgres, kill: Callable[[], T]) -> T:
    """Open three clients (one mid-transaction), ``kill`` (blocking, in a thread), then check
    what the crash left; ``kill``'s result."""
    setup = await asyncpg.connect(pg.dsn, timeout=5)
    await setup.execute("DROP TABLE IF EXISTS kept; CREATE TABLE kept (n int)")
    await setup.execute("INSERT INTO kept VALUES (1), (2)")
    await setup.close()
    clients = await _clients(pg, 3)
    await clients[0].execute("BEGIN; INSERT INTO kept VALUES (3)")  # never committed
    postmaster = pg.pid
    old = [pid for pid in pg.processes() if pid != postmaster]

    killed = await asyncio.to_thread(kill)

    assert postmaster is not None
    assert pg.pid == postmaster  # the postmaster survived: no start again needed
    assert alive(postmaster)
    assert [pid for pid in old if alive(pid)] == []  # every other child was ended too
    assert [await _broken(conn) for conn in clients] == [True, True, True]
    fresh = await asyncpg.connect(pg.dsn, timeout=5)
    try:
        assert await fresh.fetchval("SELECT array_agg(n ORDER BY n) FROM kept") == [1, 2]
    finally:
        await fresh.close()
    log = pg.log_tail(200)
    assert "terminating any other active server processes" in log
    assert "all server processes terminated; reinitializing" in log
    return killed


async def test_kill_backend_crashes_every_connection_and_keeps_committed_data(
    pg: PrivatePostgres,
) -> None:
    recovery_s = await _crashed_and_recovered(pg, pg.kill_backend)
    assert 0 < recovery_s < RECOVERY_LIMIT_S


class _PostgresOnly:
    """The one part of a :class:`NativeStack` that ``NativeProcessFaults`` needs for Postgres."""

    def __init__(self, postgres: PrivatePostgres) -> None:
        self.postgres = postgres


async def test_a_schedule_step_records_the_recovery_time(pg: PrivatePostgres) -> None:
    clients = await _clients(pg, 1)
    faults = NativeProcessFaults(cast(NativeStack, _PostgresOnly(pg)))
    schedule = FaultSchedule.parse("at 0s postgres.kill_backend")
    with CompositeInjector(None, faults) as injector:
        runner = FaultRunner(schedule, injector)
        runner.start()
        assert await asyncio.to_thread(runner.wait, 2 * RECOVERY_LIMIT_S)
        runner.stop()
    [record] = runner.applied
    assert (record.action, record.ok, record.error) == ("postgres.kill_backend", True, None)
    assert record.recovery_s is not None
    assert 0 < record.recovery_s < RECOVERY_LIMIT_S
    assert record.result == f"ok, recovered in {record.recovery_s:.2f} s"
    assert await _broken(clients[0])


def _docker_script(pg: PrivatePostgres) -> subprocess.CompletedProcess[str]:
    """``KILL_BACKEND_SH`` as the Docker path runs it, with the image's environment."""
    binaries = _binaries.find_binaries()
    assert binaries is not None
    assert pg.temp_dir is not None
    env = {
        "PATH": f"{binaries.bin_dir}:{os.environ['PATH']}",
        "POSTGRES_USER": "brink",
        "POSTGRES_DB": "brink",
        "PGHOST": str(pg.temp_dir),  # the image's default socket dir is elsewhere
        "PGPORT": str(pg.port),
    }
    argv = ["sh", "-c", KILL_BACKEND_SH]
    return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60, check=False)


async def test_the_docker_script_kills_one_backend_and_waits_for_recovery(
    pg: PrivatePostgres,
) -> None:
    result = await _crashed_and_recovered(pg, lambda: _docker_script(pg))
    assert result.returncode == 0, result.stderr


def test_without_a_client_there_is_no_backend_to_kill() -> None:
    with PrivatePostgres(port=free_port()) as server:
        with pytest.raises(PostgresError, match="has no client backend to kill"):
            server.kill_backend()
        assert server.running()
        result = _docker_script(server)
        assert KILL_BACKEND_EXITS.get(result.returncode) == "no client backend to kill"
