"""Safe defaults: loopback listeners, admin and control routes absent without a token and
closed without the right one, the token kept out of logs and reports, bounded input.

Real processes throughout: the whole native stack for the listeners, spawned apps for the
routes, a short ``brink ramp`` for the report folder.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx2
import psutil  # type: ignore[import-untyped]  # a dependency of Locust, without stubs
import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from demo_service.settings import load_settings
from demo_service.slow_api import create_slow_api
from loadtests.native.postgres import PrivatePostgres
from loadtests.native.process import ManagedProcess, free_port
from loadtests.native.stack import NativeStack, StackConfig
from tests.conftest import ADMIN_TOKEN
from tests.support import Served, Spawn

pytestmark = pytest.mark.integration

AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
WRONG = [{}, {"Authorization": "Bearer " + "x" * 40}, {"Authorization": f"Basic {ADMIN_TOKEN}"}]
SERVICE_ADMIN = [
    ("GET", "/admin/resilience"),
    ("PUT", "/admin/resilience"),
    ("POST", "/admin/resilience/reset"),
    ("GET", "/admin/faults"),
    ("PUT", "/admin/faults"),
    ("POST", "/admin/faults/reset"),
]
SLOW_API_CONTROL = [("GET", "/control"), ("PUT", "/control"), ("POST", "/control/reset")]


def _distinct_free_ports(count: int) -> list[int]:
    ports: set[int] = set()
    while len(ports) < count:
        ports.add(free_port())
    return sorted(ports)


def _listening(pids: set[int]) -> dict[int, set[str]]:
    """Port → addresses listened on by any of ``pids`` (TCP, IPv4 and IPv6)."""
    found: dict[int, set[str]] = {}
    for pid in pids:
        try:
            connections = psutil.Process(pid).net_connections(kind="inet")
        except psutil.NoSuchProcess:
            continue
        for connection in connections:
            if connection.status == psutil.CONN_LISTEN:
                found.setdefault(connection.laddr.port, set()).add(connection.laddr.ip)
    return found


def test_every_listener_of_the_native_stack_binds_loopback(tmp_path: Path) -> None:
    service, slow, pg, locust, loadgen, exporter, prom = _distinct_free_ports(7)
    config = StackConfig(
        service_port=service,
        slow_api_port=slow,
        pg_port=pg,
        locust_port=locust,
        loadgen_metrics_port=loadgen,
        locust_workers=1,  # a master and a worker: the master's bind port is a listener too
        pg_exporter_port=exporter,
        prometheus_port=prom,
        run_dir=tmp_path,
    )
    with NativeStack(config) as stack:
        ours = {child.pid for child in psutil.Process().children(recursive=True)}
        ours |= set(stack.postgres.processes())
        listeners = _listening(ours)
        started = {service, slow, pg, locust, loadgen, exporter}
        if stack.prometheus is not None:
            started.add(prom)
    assert started <= set(listeners), f"not listening: {started - set(listeners)}"
    exposed = {
        port: addresses for port, addresses in listeners.items() if addresses != {"127.0.0.1"}
    }
    assert exposed == {}, f"listeners beyond 127.0.0.1: {exposed}"


def _without_token(module: str, port_setting: str, log: Path, env: dict[str, str]) -> Iterator[str]:
    port = free_port()
    child_env = {**env, port_setting: str(port)}
    process = ManagedProcess.python_module(module, module, log, child_env)
    process.env.pop("BRINK_ADMIN_TOKEN", None)
    process.start()
    try:
        base_url = f"http://127.0.0.1:{port}"
        process.wait_http_ready(base_url + "/healthz")
        yield base_url
    finally:
        process.stop()


def test_without_a_token_admin_and_control_routes_do_not_exist(
    tmp_path: Path, postgres: PrivatePostgres
) -> None:
    for module, port_setting, env, routes in (
        ("demo_service", "BRINK_SERVER__PORT", {"BRINK_DB__DSN": postgres.dsn}, SERVICE_ADMIN),
        ("demo_service.slow_api", "BRINK_SLOW_API__PORT", {}, SLOW_API_CONTROL),
    ):
        log = tmp_path / f"{module}.log"
        for base_url in _without_token(module, port_setting, log, env):
            with httpx2.Client(base_url=base_url, timeout=10) as client:
                for method, path in routes:
                    for headers in (AUTH, {}):
                        answer = client.request(method, path, json={}, headers=headers)
                        assert answer.status_code == 404, (module, method, path)
                spec = client.get("/openapi.json").json()
                assert not {path for _, path in routes} & set(spec["paths"])


@pytest.fixture(scope="module")
def apps(service: Served, slow_api: Served) -> dict[str, Served]:
    return {"service": service, "slow API": slow_api}


@pytest.mark.parametrize(
    ("app", "method", "path"),
    [("service", *route) for route in SERVICE_ADMIN]
    + [("slow API", *route) for route in SLOW_API_CONTROL],
)
def test_without_the_right_token_401_and_nothing_changes(
    apps: dict[str, Served], app: str, method: str, path: str
) -> None:
    base_url = apps[app].base_url
    state_path = "/control" if app == "slow API" else "/admin/faults"
    body = {"extra_latency_s": 5} if app == "slow API" else {"db_latency_s": 5}
    with httpx2.Client(base_url=base_url, timeout=10) as client:
        before = client.get(state_path, headers=AUTH).json()
        for headers in WRONG:
            answer = client.request(method, path, json=body, headers=headers)
            assert answer.status_code == 401, answer.text
            assert answer.headers["WWW-Authenticate"] == "Bearer"
            assert answer.json()["detail"]
            assert ADMIN_TOKEN not in answer.text
        assert client.get(state_path, headers=AUTH).json() == before


def test_the_token_is_compared_in_constant_time(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every check goes through ``secrets.compare_digest`` (time independent of where the
    strings differ), on bytes: a non-ASCII header must be a 401, not a 500."""
    compared: list[tuple[object, object]] = []
    real = secrets.compare_digest

    def recording(given: bytes, expected: bytes) -> bool:
        compared.append((given, expected))
        return real(given, expected)

    monkeypatch.setattr(secrets, "compare_digest", recording)
    token = "unit-" + secrets.token_hex(16)
    client = TestClient(create_slow_api(load_settings(admin_token=SecretStr(token))))
    assert client.get("/control", headers={"Authorization": f"Bearer {token}"}).status_code == 200
    assert client.get("/control", headers={"Authorization": "Bearer nope"}).status_code == 401
    latin = {"Authorization": "Bearer caf\xe9-\xff".encode("latin-1")}
    assert client.get("/control", headers=latin).status_code == 401  # type: ignore[arg-type]
    assert len(compared) == 3
    assert all(isinstance(given, bytes) for given, _ in compared)


def test_the_token_never_reaches_logs_or_a_ramp_report(tmp_path: Path) -> None:
    """A short real ramp given the token through the environment: the report folder (reports,
    logs of every process, the ledger) never contains it."""
    token = "leak-canary-" + secrets.token_hex(16)
    run_dir = tmp_path / "run"
    env = {**os.environ, "BRINK_ADMIN_TOKEN": token}
    ramp = [
        "--profile", "average", "--average-rps", "5", "--peak-rps", "10", "--step-s", "4",
        "--no-probe", "--timeout-s", "2", "--mix", "item=1,order=1,quote=1",
        "--run-dir", str(run_dir),
    ]  # fmt: skip
    done = subprocess.run(
        [sys.executable, "-m", "loadtests", "ramp", *ramp],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert done.returncode in (0, 1), done.stderr[-2000:]  # a verdict, not a failed run
    files = [path for path in run_dir.rglob("*") if path.is_file()]
    assert any(path.name.endswith(".log") for path in files), files
    leaked = [path for path in files if token.encode() in path.read_bytes()]
    assert leaked == []
    assert token not in done.stdout + done.stderr


def test_the_token_never_reaches_the_service_logs(spawn_service: Spawn, tmp_path: Path) -> None:
    served = spawn_service({"BRINK_SERVER__DRAIN_TIMEOUT_S": "2"})
    with httpx2.Client(base_url=served.base_url, timeout=10) as client:
        assert client.put("/admin/faults", json={"db_latency_s": 0.01}, headers=AUTH).is_success
        client.put("/admin/faults", json={"pool_size": 0}, headers=AUTH)  # 422
        client.get("/admin/faults", headers={"Authorization": f"Bearer {ADMIN_TOKEN}x"})  # 401
        assert client.post("/admin/faults/reset", headers=AUTH).is_success
    served.process.stop()
    assert ADMIN_TOKEN not in served.process.log_path.read_text(errors="replace")


def _order(quantity: object, item_id: object = 1) -> tuple[str, str, dict[str, object]]:
    return ("POST", "/orders", {"json": {"item_id": item_id, "quantity": quantity}})


@pytest.mark.parametrize(
    ("app", "method", "path", "request_args", "status"),
    [
        ("service", "POST", "/orders", {"content": b"{" + b" " * 70_000 + b"}"}, 413),
        ("service", "PUT", "/admin/faults", {"content": b" " * 70_000}, 413),
        ("slow API", "PUT", "/control", {"content": b" " * 20_000}, 413),
        ("service", *_order(0), 422),
        ("service", *_order(101), 422),
        ("service", *_order(10**30), 422),
        ("service", *_order(1, item_id=2**31), 422),
        ("service", *_order(1, item_id=0), 422),
        ("service", "GET", "/items/2147483648", {}, 422),
        ("service", "GET", "/items/1/shipping-quote", {"params": {"quantity": 101}}, 422),
        ("service", "PUT", "/admin/faults", {"json": {"pool_size": 501}}, 422),
        ("service", "PUT", "/admin/faults", {"json": {"cpu_burn_iterations": 10**8}}, 422),
        ("service", "PUT", "/admin/faults", {"json": {"db_latency_s": 1e9}}, 422),
        ("service", "PUT", "/admin/resilience", {"json": {"shedding": {"limit": 10**9}}}, 422),
        ("slow API", "GET", "/quote", {"params": {"item_id": 1, "quantity": 101}}, 422),
        ("slow API", "PUT", "/control", {"json": {"extra_latency_s": 1e9}}, 422),
        ("slow API", "PUT", "/control", {"json": {"capacity": 0}}, 422),
    ],
)
def test_bodies_and_client_numbers_are_bounded(
    apps: dict[str, Served],
    app: str,
    method: str,
    path: str,
    request_args: dict[str, object],
    status: int,
) -> None:
    headers = {**AUTH, "Idempotency-Key": str(uuid.uuid4()), "Content-Type": "application/json"}
    with httpx2.Client(base_url=apps[app].base_url, timeout=10) as client:
        answer = client.request(method, path, headers=headers, **request_args)  # type: ignore[arg-type]
        assert answer.status_code == status, answer.text
        assert answer.json()["detail"]  # a reason, not just a code
