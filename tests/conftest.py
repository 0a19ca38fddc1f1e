"""Shared fixtures: a real private Postgres and real uvicorn servers in child processes."""

from __future__ import annotations

import secrets
from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

import pytest

from loadtests.native.postgres import PrivatePostgres
from loadtests.native.process import ManagedProcess, free_port
from tests.support import Served, Spawn

ADMIN_TOKEN = "test-" + secrets.token_hex(16)


@pytest.fixture(scope="session")
def postgres(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrivatePostgres]:
    """One private Postgres for the whole test session, on a free port."""
    server = PrivatePostgres(port=free_port())
    server.start()
    try:
        yield server
    finally:
        server.stop()


@contextmanager
def _spawner(log_dir: Path, module: str, ready_path: str, port_setting: str) -> Iterator[Spawn]:
    """A factory of ``python -m module`` servers on free ports, all stopped on exit."""
    started: list[ManagedProcess] = []

    def spawn(env: Mapping[str, str] | None = None, *, wait: bool = True) -> Served:
        port = free_port()
        full_env = {port_setting: str(port), "BRINK_ADMIN_TOKEN": ADMIN_TOKEN, **(env or {})}
        name = f"{module}-{len(started)}"
        process = ManagedProcess.python_module(name, module, log_dir / f"{name}.log", full_env)
        started.append(process.start())
        base_url = f"http://127.0.0.1:{port}"
        if wait:
            process.wait_http_ready(base_url + ready_path)
        return Served(base_url, process)

    try:
        yield spawn
    finally:
        for process in started:
            process.stop()


def _slow_api_spawner(log_dir: Path) -> AbstractContextManager[Spawn]:
    return _spawner(log_dir, "demo_service.slow_api", "/healthz", "BRINK_SLOW_API__PORT")


@contextmanager
def _service_spawner(log_dir: Path, postgres: PrivatePostgres) -> Iterator[Spawn]:
    with _spawner(log_dir, "demo_service", "/readyz", "BRINK_SERVER__PORT") as spawn:

        def on_postgres(env: Mapping[str, str] | None = None, *, wait: bool = True) -> Served:
            return spawn({"BRINK_DB__DSN": postgres.dsn, **(env or {})}, wait=wait)

        yield on_postgres


@pytest.fixture
def spawn_slow_api(tmp_path: Path) -> Iterator[Spawn]:
    """Start ``python -m demo_service.slow_api`` with extra ``BRINK_*`` env; stopped after."""
    with _slow_api_spawner(tmp_path) as spawn:
        yield spawn


@pytest.fixture
def spawn_service(tmp_path: Path, postgres: PrivatePostgres) -> Iterator[Spawn]:
    """Start ``python -m demo_service`` on the session's Postgres; waits for ``/readyz``."""
    with _service_spawner(tmp_path, postgres) as spawn:
        yield spawn


@pytest.fixture(scope="module")
def slow_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """One slow API for a test module: fast (5 ms base, no jitter) unless a test changes it."""
    env = {"BRINK_SLOW_API__BASE_LATENCY_S": "0.005", "BRINK_SLOW_API__JITTER_SIGMA": "0"}
    with _slow_api_spawner(tmp_path_factory.mktemp("slow-api")) as spawn:
        yield spawn(env)


@pytest.fixture(scope="module")
def service(
    tmp_path_factory: pytest.TempPathFactory, postgres: PrivatePostgres, slow_api: Served
) -> Iterator[Served]:
    """One demo service for a test module, wired to the module's slow API."""
    with _service_spawner(tmp_path_factory.mktemp("service"), postgres) as spawn:
        yield spawn({"BRINK_EXTERNAL__URL": slow_api.base_url})
