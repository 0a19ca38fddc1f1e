"""DockerProcessFaults against the Engine API contract: the real Docker SDK, a fake engine.

No Docker engine runs on these machines, so a tiny Engine API server (stdlib ``http.server`` in a
thread, on 127.0.0.1) answers the endpoints the SDK calls, filters containers by label as the
engine does, and records every request. The assertions are on the exact requests the SDK sent:
that is what a real engine would receive.
"""

from __future__ import annotations

import importlib
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from loadtests.faults.docker_faults import KILL_BACKEND_SH, DockerClient, DockerProcessFaults
from loadtests.faults.injector import CompositeInjector
from loadtests.faults.spec import FaultAction

API = "/v1.43"
Engine = tuple["FakeEngine", DockerClient]
RAW_STREAM = object()
"""An exec's output stream: the engine upgrades the connection, streams, then closes it."""


@dataclass
class FakeEngine:
    """Containers as the engine would list them, and every request received."""

    containers: dict[str, dict[str, Any]]
    requests: list[tuple[str, str, dict[str, list[str]], Any]] = field(default_factory=list)
    exec_exit_code: int = 0

    def answer(self, method: str, path: str, query: dict[str, list[str]], body: Any) -> Any:
        if path in ("/_ping", "/version"):
            return "OK" if path == "/_ping" else {"ApiVersion": API[2:], "Version": "26.1.0"}
        self.requests.append((method, path, query, body))
        if path.startswith(API + "/exec/"):
            return self._exec(path.removeprefix(API + "/exec/"))
        assert path.startswith(API + "/containers/"), path
        rest = path.removeprefix(API + "/containers/")
        if rest == "json":
            wanted = json.loads(query["filters"][0])["label"]
            return [
                {"Id": cid, "Labels": attrs["Config"]["Labels"]}
                for cid, attrs in self.containers.items()
                if all(_has_label(attrs, label) for label in wanted)
            ]
        cid, _, operation = rest.partition("/")
        if operation == "json":
            return self.containers[cid]
        if operation == "update":
            return {"Warnings": []}
        if operation == "exec":
            return {"Id": f"exec-{cid}"}
        assert operation in ("pause", "unpause", "restart", "kill", "start"), operation
        return None

    def _exec(self, rest: str) -> Any:
        exec_id, _, operation = rest.partition("/")
        if operation == "start":
            return RAW_STREAM  # no output: the exit code says how it went
        assert operation == "json", operation
        return {"ID": exec_id, "Running": False, "ExitCode": self.exec_exit_code}


def _has_label(attrs: dict[str, Any], label: str) -> bool:
    key, _, value = label.partition("=")
    return bool(attrs["Config"]["Labels"].get(key) == value)


def _container(cid: str, project: str, service: str, nano_cpus: int) -> dict[str, Any]:
    labels = {"com.docker.compose.project": project, "com.docker.compose.service": service}
    return {
        "Id": cid,
        "Name": f"/{project}-{service}-1",
        "Config": {"Labels": labels, "Image": "brink:0.1.0"},
        "HostConfig": {"NanoCpus": nano_cpus, "CpuQuota": 0, "CpuPeriod": 0},
        "State": {"Status": "running", "Running": True},
    }


def _handler(engine: FakeEngine) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            self._serve()

        def do_HEAD(self) -> None:
            self._serve()

        def do_POST(self) -> None:
            self._serve()

        def _serve(self) -> None:
            url = urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            body = json.loads(raw) if raw else None
            answer = engine.answer(self.command, url.path, parse_qs(url.query), body)
            if answer is RAW_STREAM:
                self.send_response(101, "UPGRADED")
                self.send_header("Content-Type", "application/vnd.docker.raw-stream")
                self.send_header("Connection", "Upgrade")
                self.send_header("Upgrade", "tcp")
                self.end_headers()
                self.close_connection = True
                return
            if answer is None:
                self.send_response(204)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            data = answer.encode() if isinstance(answer, str) else json.dumps(answer).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


@pytest.fixture
def engine() -> Iterator[Engine]:
    fake = FakeEngine(
        {
            "pg1": _container("pg1", "brink", "postgres", 1_000_000_000),
            "svc1": _container("svc1", "brink", "demo-service", 1_000_000_000),
            "slow1": _container("slow1", "brink", "slow-api", 0),
            "slow2": _container("slow2", "brink", "slow-api", 0),
            "other": _container("other", "elsewhere", "postgres", 0),
        }
    )
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(fake))
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    # by name: mypy and ruff would take the repo's docker/ dir (the Dockerfile) for the SDK
    sdk = importlib.import_module("docker")
    client = sdk.DockerClient(base_url=f"tcp://127.0.0.1:{server.server_port}", timeout=10)
    try:
        yield fake, client
    finally:
        client.close()
        server.shutdown()
        server.server_close()
        thread.join()


def _listing(service: str) -> tuple[str, str, dict[str, list[str]], None]:
    labels = ["com.docker.compose.project=brink", f"com.docker.compose.service={service}"]
    query = {
        "limit": ["-1"],
        "all": ["1"],
        "size": ["0"],
        "trunc_cmd": ["0"],
        "filters": [json.dumps({"label": labels})],
    }
    return ("GET", f"{API}/containers/json", query, None)


def _inspect(cid: str) -> tuple[str, str, dict[str, list[str]], None]:
    return ("GET", f"{API}/containers/{cid}/json", {}, None)


def _post(cid: str, operation: str, body: Any = None, **query: str) -> tuple[Any, ...]:
    params = {key: [value] for key, value in query.items()}
    return ("POST", f"{API}/containers/{cid}/{operation}", params, body)


def test_pause_resume_restart_kill_postgres(
    engine: Engine,
) -> None:
    fake, client = engine
    faults = DockerProcessFaults(client, "brink")
    faults.pause("postgres")
    faults.resume("postgres")
    faults.restart("postgres")
    faults.kill("postgres")
    find = [_listing("postgres"), _inspect("pg1")]
    assert fake.requests == [
        *find, _post("pg1", "pause"),
        *find, _post("pg1", "unpause"),
        *find, _post("pg1", "restart", t="10"),
        *find, _post("pg1", "kill"), _post("pg1", "start"),
    ]  # fmt: skip


def test_cpu_throttle_under_compose_limits_uses_nano_cpus(
    engine: Engine,
) -> None:
    """Compose's ``cpus: "1"`` is NanoCpus: the engine refuses CpuQuota on such a container."""
    fake, client = engine
    faults = DockerProcessFaults(client, "brink")
    faults.throttle_cpu("service", 0.3)
    faults.throttle_cpu("service", None)  # back to the Compose limit, not to "unlimited"
    find = [_listing("demo-service"), _inspect("svc1")]
    assert fake.requests == [
        *find, _post("svc1", "update", {"NanoCpus": 300_000_000}),
        *find, _post("svc1", "update", {"NanoCpus": 1_000_000_000}),
    ]  # fmt: skip


def test_cpu_throttle_without_limits_uses_quota_on_every_replica(
    engine: Engine,
) -> None:
    fake, client = engine
    faults = DockerProcessFaults(client, "brink")
    faults.throttle_cpu("slow_api", 0.5)
    faults.throttle_cpu("slow_api", None)
    find = [_listing("slow-api"), _inspect("slow1"), _inspect("slow2")]
    limit = {"CpuPeriod": 100_000, "CpuQuota": 50_000}
    no_limit = {"CpuPeriod": 100_000, "CpuQuota": -1}
    assert fake.requests == [
        *find, _post("slow1", "update", limit), _post("slow2", "update", limit),
        *find, _post("slow1", "update", no_limit), _post("slow2", "update", no_limit),
    ]  # fmt: skip


def test_through_the_composite_injector(engine: Engine) -> None:
    fake, client = engine
    injector = CompositeInjector(None, DockerProcessFaults(client, "brink"))
    injector.apply(FaultAction("postgres", "pause"))
    injector.reset()  # resumes what is paused
    assert [(method, path) for method, path, _, _ in fake.requests if method == "POST"] == [
        ("POST", f"{API}/containers/pg1/pause"),
        ("POST", f"{API}/containers/pg1/unpause"),
    ]


def test_missing_service_and_unknown_part(engine: Engine) -> None:
    fake, client = engine
    with pytest.raises(ValueError, match="no container of Compose service 'postgres' in project"):
        DockerProcessFaults(client, "nobody").pause("postgres")
    with pytest.raises(ValueError, match="unknown part 'locust'"):
        DockerProcessFaults(client, "brink").pause("locust")
    assert all(method == "GET" for method, _, _, _ in fake.requests)


def test_kill_backend_execs_the_script_in_the_postgres_container(engine: Engine) -> None:
    fake, client = engine
    recovery_s = DockerProcessFaults(client, "brink").kill_backend("postgres")
    find, create, start, inspect = fake.requests[:2], *fake.requests[2:]
    assert find == [_listing("postgres"), _inspect("pg1")]
    assert create[:2] == ("POST", f"{API}/containers/pg1/exec")
    assert create[3]["Cmd"] == ["sh", "-c", KILL_BACKEND_SH]
    assert (create[3]["User"], create[3]["Privileged"]) == ("", False)  # the image's root
    assert start[:2] == ("POST", f"{API}/exec/exec-pg1/start")
    assert inspect[:2] == ("GET", f"{API}/exec/exec-pg1/json")
    assert recovery_s > 0


def test_kill_backend_through_the_composite_returns_the_recovery_time(engine: Engine) -> None:
    _, client = engine
    injector = CompositeInjector(None, DockerProcessFaults(client, "brink"))
    recovery_s = injector.apply(FaultAction("postgres", "kill_backend"))
    assert recovery_s is not None
    assert recovery_s > 0


def test_kill_backend_names_what_went_wrong(engine: Engine) -> None:
    fake, client = engine
    fake.exec_exit_code = 3
    with pytest.raises(RuntimeError, match="kill_backend in brink-postgres-1: no client backend"):
        DockerProcessFaults(client, "brink").kill_backend("postgres")
    fake.exec_exit_code = 7
    with pytest.raises(RuntimeError, match="kill_backend in brink-postgres-1: exit 7"):
        DockerProcessFaults(client, "brink").kill_backend("postgres")
    with pytest.raises(ValueError, match="only postgres has backends"):
        DockerProcessFaults(client, "brink").kill_backend("service")
