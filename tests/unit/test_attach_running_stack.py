"""Finding a running stack: ``brink up``'s stack.json (fresh, missing, stale, someone else's)
and the Compose lab's files (published ports, .env, the folder its Prometheus reads run targets
from and the host's name in its container), and where the admin token comes from."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from loadtests.attach.running_stack import (
    STACK_FILE,
    AttachError,
    RunningStack,
    admin_token,
    claim,
    find_compose,
    find_native,
    unpublish,
)
from loadtests.native.stack import ADMIN_TOKEN_ENV, StackError
from tests.unit.fake_stack import dead_pid

ROOT = Path(__file__).resolve().parents[2]
URLS = {
    "service": "http://127.0.0.1:18000",
    "slow_api": "http://127.0.0.1:18001",
    "postgres": "postgresql://brink@127.0.0.1:15432/brink",
}


def _write(folder: Path, stack: RunningStack) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / STACK_FILE
    path.write_text(json.dumps(stack.to_dict()))
    return path


def _native(tmp_path: Path, pids: dict[str, int]) -> RunningStack:
    return RunningStack(
        kind="native",
        urls=URLS,
        admin_token_file=tmp_path / "admin-token",
        pids=pids,
        postgres_data_dir=tmp_path / "pg" / "data",
        durable_postgres=True,
        prometheus_targets_dir=tmp_path / "prometheus" / "targets",
    )


def test_a_described_stack_reads_back_as_written(tmp_path: Path) -> None:
    stack = _native(tmp_path, {"brink up": os.getpid()})
    _write(tmp_path, stack)
    assert find_native(tmp_path) == stack


def test_no_description_says_how_to_start_one(tmp_path: Path) -> None:
    with pytest.raises(
        AttachError, match=r"no running `brink up` found: .*stack.json.*--stack-dir"
    ):
        find_native(tmp_path)


def test_a_stale_description_is_refused_naming_the_dead_process(tmp_path: Path) -> None:
    dead = dead_pid()
    _write(tmp_path, _native(tmp_path, {"brink up": os.getpid(), "demo service": dead}))
    with pytest.raises(AttachError, match=rf"is stale: demo service \(pid {dead}\)"):
        find_native(tmp_path)


@pytest.mark.parametrize(
    "text", ["not json", "[]", '{"format": 99}', '{"format": 1, "kind": "native", "urls": {}}']
)
def test_an_unreadable_description_is_refused(tmp_path: Path, text: str) -> None:
    (tmp_path / STACK_FILE).write_text(text)
    with pytest.raises(AttachError, match="not a stack description"):
        find_native(tmp_path)


def test_a_second_brink_up_on_a_live_run_dir_is_refused(tmp_path: Path) -> None:
    claim(tmp_path)  # nothing there
    _write(tmp_path, _native(tmp_path, {"brink up": dead_pid()}))
    claim(tmp_path)  # a stale description: the run dir is free
    _write(tmp_path, _native(tmp_path, {"brink up": os.getpid()}))
    with pytest.raises(StackError, match=f"another brink up \\(pid {os.getpid()}\\) runs"):
        claim(tmp_path)


def test_brink_up_removes_only_its_own_description(tmp_path: Path) -> None:
    theirs = _write(tmp_path, _native(tmp_path, {"brink up": dead_pid()}))
    unpublish(tmp_path)
    assert theirs.exists()  # a second brink up that failed on the same run dir leaves it
    ours = _write(tmp_path, _native(tmp_path, {"brink up": os.getpid()}))
    unpublish(tmp_path)
    assert not ours.exists()
    unpublish(tmp_path)  # nothing there: nothing to do


# --- Compose -----------------------------------------------------------------------------------

COMPOSE = """
name: lab
services:
  postgres:
    command: ["postgres", "-c", "fsync=off"]
    environment:
      POSTGRES_USER: brink
      POSTGRES_DB: brink
      POSTGRES_PASSWORD: ${POSTGRES_PASSWORD:?set it}
    ports: ["127.0.0.1:${PG_PORT:-55432}:5432"]
  slow-api:
    ports: ["127.0.0.1:18001:8001"]
  demo-service:
    ports:
      - target: 8000
        published: 18000
        host_ip: 127.0.0.1
  locust-master:
    ports: ["127.0.0.1:18089:8089", "127.0.0.1:19646:9646"]
"""


def _compose_dir(tmp_path: Path, env: str) -> Path:
    (tmp_path / "docker-compose.yml").write_text(COMPOSE)
    (tmp_path / ".env").write_text(env)
    return tmp_path


def test_compose_urls_are_its_published_ports(tmp_path: Path) -> None:
    root = _compose_dir(tmp_path, "POSTGRES_PASSWORD=pw-from-env\n")
    stack = find_compose(root, environ={})
    assert stack.urls == {
        "service": "http://127.0.0.1:18000",
        "metrics": "http://127.0.0.1:18000/metrics",
        "slow_api": "http://127.0.0.1:18001",
        "locust": "http://127.0.0.1:18089",
        "loadgen_metrics": "http://127.0.0.1:19646/metrics",
        "postgres": "postgresql://brink:pw-from-env@127.0.0.1:55432/brink",
    }
    assert stack.compose_project == "lab"
    assert stack.durable_postgres is False  # fsync=off in its command
    assert stack.pids == {}


def test_the_shell_overrides_dot_env_as_with_docker_compose(tmp_path: Path) -> None:
    root = _compose_dir(tmp_path, "POSTGRES_PASSWORD=pw-from-env\nPG_PORT=1\n")
    stack = find_compose(root, environ={"PG_PORT": "15999", "POSTGRES_PASSWORD": "shell"})
    assert stack.dsn == "postgresql://brink:shell@127.0.0.1:15999/brink"


def test_the_labs_own_compose_file_describes_its_loopback_ports() -> None:
    stack = find_compose(ROOT, environ={})
    assert stack.service_url == "http://127.0.0.1:8000"
    assert stack.slow_api_url == "http://127.0.0.1:8001"
    assert stack.urls["prometheus"] == "http://127.0.0.1:9090"
    assert stack.dsn.startswith("postgresql://brink:")
    assert stack.dsn.endswith("@127.0.0.1:54329/brink")
    assert stack.durable_postgres is True
    assert stack.compose_project == "brink"
    assert admin_token(stack, environ={})  # .env holds the lab's token
    assert stack.prometheus_targets_dir == ROOT / "docker" / "prometheus-targets"
    assert stack.prometheus_targets_dir.is_dir()  # shipped: Docker would create it as root
    assert stack.host_from_prometheus == "host.docker.internal"


RUN_TARGETS_SYNTAXES = {
    "short": """
    volumes: ["./conf:/etc/prometheus:ro", "${RUNS:-./runs}:/etc/prometheus-runs:ro"]
    extra_hosts: ["host.docker.internal:host-gateway"]
""",
    "long": """
    volumes:
      - {type: bind, source: ./runs, target: /etc/prometheus-runs, read_only: true}
    extra_hosts: {host.docker.internal: host-gateway}
""",
    "equals": """
    volumes: ["./runs:/etc/prometheus-runs"]
    extra_hosts: ["other:10.0.0.1", "host.docker.internal=host-gateway"]
""",
}


@pytest.mark.parametrize("syntax", sorted(RUN_TARGETS_SYNTAXES))
def test_compose_run_targets_are_the_prometheus_mount_and_the_host_gateway_name(
    tmp_path: Path, syntax: str
) -> None:
    prometheus = "  prometheus:" + RUN_TARGETS_SYNTAXES[syntax]
    (tmp_path / "docker-compose.yml").write_text(COMPOSE + prometheus)
    stack = find_compose(tmp_path, environ={"POSTGRES_PASSWORD": "pw"})
    assert stack.prometheus_targets_dir == tmp_path / "runs"
    assert stack.host_from_prometheus == "host.docker.internal"


@pytest.mark.parametrize(
    "prometheus",
    [
        "",  # no Prometheus at all
        '    volumes: ["./runs:/etc/prometheus-runs:ro"]\n',  # no way back to the host
        '    extra_hosts: ["host.docker.internal:host-gateway"]\n',  # no folder
        '    volumes: ["./runs:/elsewhere:ro"]\n'
        '    extra_hosts: ["host.docker.internal:host-gateway"]\n',
    ],
)
def test_without_both_the_compose_run_gets_no_target_file(tmp_path: Path, prometheus: str) -> None:
    (tmp_path / "docker-compose.yml").write_text(COMPOSE + "  prometheus:\n" + prometheus)
    stack = find_compose(tmp_path, environ={"POSTGRES_PASSWORD": "pw"})
    assert (stack.prometheus_targets_dir, stack.host_from_prometheus) == (None, None)


def test_a_compose_file_without_the_service_is_refused(tmp_path: Path) -> None:
    (tmp_path / "docker-compose.yml").write_text("services: {}\n")
    with pytest.raises(AttachError, match="demo-service publishes no port 8000"):
        find_compose(tmp_path, environ={})


# --- the admin token ----------------------------------------------------------------------------


def test_the_token_comes_from_the_shell_then_the_stack(tmp_path: Path) -> None:
    stack = _native(tmp_path, {})
    stack.admin_token_file.write_text("from-the-file-0123456789\n")  # type: ignore[union-attr]
    assert admin_token(stack, environ={}) == "from-the-file-0123456789"
    assert admin_token(stack, environ={ADMIN_TOKEN_ENV: "from-the-shell"}) == "from-the-shell"


def test_compose_token_comes_from_dot_env(tmp_path: Path) -> None:
    root = _compose_dir(tmp_path, f"{ADMIN_TOKEN_ENV}=from-dot-env-0123456789\n")
    assert admin_token(find_compose(root, environ={}), environ={}) == "from-dot-env-0123456789"


def test_no_token_anywhere_says_where_to_put_one() -> None:
    stack = RunningStack(kind="native", urls=URLS)  # brink up was given its token
    with pytest.raises(
        AttachError, match=f"brink up was given one: set the same {ADMIN_TOKEN_ENV}"
    ):
        admin_token(stack, environ={})
