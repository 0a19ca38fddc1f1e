"""The Compose stack checked without a Docker engine: docker-compose.yml, .env and docker/.

Schema and ``docker compose config`` first, then what neither checks: healthchecks behind every
``service_healthy``, ports on 127.0.0.1 only, pinned images, real ``BRINK_*`` settings, a non-root
Dockerfile, mounted files, Locust command lines, and agreement with Prometheus' targets (the
run-targets folder and the host's name in its container included); then what makes the stack
trustworthy on a laptop: the project name faults look for, brink's image rebuilt
on every ``up`` from the lock, restart policies, and a durable Postgres.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import textwrap
import tomllib
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import BaseModel

from demo_service.pg_exporter import WAITS_QUERY
from demo_service.settings import (
    ENV_NESTED_DELIMITER,
    ENV_PREFIX,
    Settings,
    SettingsError,
    load_settings,
)
from loadtests.attach.running_stack import COMPOSE_RUN_TARGETS, HOST_GATEWAY
from loadtests.native.postgres import NON_DURABLE_SETTINGS
from loadtests.native.prometheus import RUN_JOB

pytestmark = pytest.mark.integration

ROOT = Path(__file__).parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
ENV_FILE = ROOT / ".env"
DOCKERFILE = ROOT / "docker" / "Dockerfile"
QUERIES_FILE = ROOT / "docker" / "postgres-exporter-queries.yaml"
PROMETHEUS_CONFIG = ROOT / "dashboards" / "prometheus" / "prometheus.yml"
FAULTS_DOC = ROOT / "docs" / "faults.md"
PROJECT = "brink"
"""Compose's project name: the label value process faults select containers by."""
COLLEAGUE_DIRS = ("dashboards",)
"""Mount sources written by others: missing ones skip the check instead of failing it."""
BACKEND = ("postgres", "demo-service", "slow-api")
"""The services whose limits decide the tipping point."""
APP_LISTENERS = {"demo_service": "SERVER", "demo_service.slow_api": "SLOW_API"}
"""``python -m`` module -> its settings group's env name."""

_VARIABLE = re.compile(r"\$\{(?P<name>[A-Za-z_]\w*)(?P<op>:?[-?])?(?P<arg>[^}]*)\}")


def _dotenv(path: Path) -> dict[str, str]:
    """``KEY=value`` lines (brink's .env quotes nothing); comments and blank lines skipped."""
    lines = [line.strip() for line in path.read_text().splitlines()]
    pairs = [line.split("=", 1) for line in lines if line and not line.startswith("#")]
    return {key.strip(): value.strip() for key, value in pairs}


def _interpolate(text: str, env: Mapping[str, str]) -> str:
    """Compose's ``${NAME}``, ``${NAME:?message}`` and ``${NAME:-default}``; ``$$`` is a ``$``."""

    def value(match: re.Match[str]) -> str:
        name, op, arg = match["name"], match["op"] or "", match["arg"]
        found = env.get(name)
        if found is not None and (found or not op.startswith(":")):
            return found
        if op.endswith("-"):
            return arg
        raise AssertionError(f"${{{name}}} is used in docker-compose.yml but not set in .env")

    return _VARIABLE.sub(value, text.replace("$$", "\0")).replace("\0", "$")


@pytest.fixture(scope="module")
def env() -> dict[str, str]:
    return _dotenv(ENV_FILE)


@pytest.fixture(scope="module")
def compose(env: dict[str, str]) -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load(_interpolate(COMPOSE_FILE.read_text(), env))
    return document


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = compose["services"]
    return found


def _environment(service: Mapping[str, Any]) -> dict[str, str]:
    raw = service.get("environment") or {}
    if isinstance(raw, list):
        raw = dict(item.split("=", 1) for item in raw)
    return {str(key): str(value) for key, value in raw.items()}


def _binds(service: Mapping[str, Any]) -> Iterator[tuple[str, str]]:
    """``(host source, container target)`` of each bind mount."""
    for volume in service.get("volumes") or []:
        if isinstance(volume, dict):
            if volume.get("type") == "bind":
                yield volume["source"], volume["target"]
        elif volume.startswith((".", "/")):
            source, target = volume.split(":")[:2]
            yield source, target


def _published(service: Mapping[str, Any]) -> Iterator[tuple[str | None, str]]:
    """``(host ip or None, container port)`` of each published port."""
    for port in service.get("ports") or []:
        if isinstance(port, dict):
            yield port.get("host_ip"), str(port["target"])
        else:
            parts = str(port).split("/")[0].split(":")
            yield (parts[0] if len(parts) == 3 else None), parts[-1]


def _command(service: Mapping[str, Any]) -> list[str]:
    command = service.get("command") or []
    return command.split() if isinstance(command, str) else [str(part) for part in command]


def _run(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=120)


def test_compose_file_matches_the_compose_spec() -> None:
    checked = _run(
        sys.executable,
        "-m",
        "check_jsonschema",
        "--builtin-schema",
        "vendor.compose-spec",
        str(COMPOSE_FILE),
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr


def _works(*argv: str) -> bool:
    if shutil.which(argv[0]) is None:
        return False
    return _run(*argv).returncode == 0


def test_docker_compose_config_accepts_it(tmp_path: Path) -> None:
    """Compose v2 (``docker compose``: GitHub's runners, Docker Desktop) reads the file as is.

    Failing that, Debian's docker-compose 1.29 (v1) checks everything but the top-level ``name``,
    which v1 predates (it takes ``-p`` instead): a copy without that line, same project dir.
    """
    if _works("docker", "compose", "version"):
        checked = _run("docker", "compose", "-f", str(COMPOSE_FILE), "config", "-q")
    elif _works("docker-compose", "version"):
        text = COMPOSE_FILE.read_text()
        assert f"\nname: {PROJECT}\n" in text
        legacy = tmp_path / "docker-compose.v1.yml"
        legacy.write_text(text.replace(f"\nname: {PROJECT}\n", "\n"))
        argv = ["--project-directory", str(ROOT), "-p", PROJECT, "-f", str(legacy)]
        checked = _run("docker-compose", *argv, "config", "-q")
    else:
        pytest.skip(
            "no working Compose to run `config -q` (the compose-spec schema check still ran): "
            "`docker compose version` (v2 plugin) and `docker-compose version` (Debian's 1.29: "
            "apt-get install -y --no-install-recommends docker-compose) both failed"
        )
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_every_variable_comes_from_env_and_every_env_entry_is_used(env: dict[str, str]) -> None:
    text = COMPOSE_FILE.read_text()
    assert not re.search(r"\$(?!\{)", text.replace("$$", "")), "use ${NAME}, not $NAME"
    used = {match["name"] for match in _VARIABLE.finditer(text)}
    _interpolate(text, env)  # raises on anything .env does not set
    assert used == set(env), f".env entries nobody uses: {sorted(set(env) - used)}"


def test_every_dependency_waits_for_a_healthcheck(services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        depends_on = service.get("depends_on") or {}
        assert isinstance(depends_on, dict), f"{name}: depends_on needs conditions, not a list"
        for dependency, how in depends_on.items():
            assert dependency in services, f"{name} depends on unknown {dependency}"
            assert how.get("condition") == "service_healthy", f"{name} -> {dependency}"
            check = services[dependency].get("healthcheck") or {}
            lacking = f"{name} waits for {dependency} to be healthy, but it has no healthcheck"
            assert check.get("test"), lacking
            assert not check.get("disable"), lacking
            assert check["test"][0] in ("CMD", "CMD-SHELL"), f"{dependency}: {check['test']}"


def test_every_published_port_is_bound_to_loopback(services: dict[str, dict[str, Any]]) -> None:
    published = 0
    for name, service in services.items():
        assert service.get("network_mode") != "host", name
        for host_ip, target in _published(service):
            assert host_ip == "127.0.0.1", f"{name}: port {target} published beyond 127.0.0.1"
            published += 1
    assert published >= 3  # Locust, Grafana, Prometheus at least


def test_every_image_is_pinned(services: dict[str, dict[str, Any]], env: dict[str, str]) -> None:
    for name, service in services.items():
        image = service["image"]
        if "build" in service:
            continue  # built here: its base image is checked below
        assert "@sha256:" in image or ":" in image.rsplit("/", 1)[-1], f"{name}: {image} untagged"
        tag = image.rsplit(":", 1)[-1]
        assert tag != "latest", f"{name}: {image} is not pinned"
        assert re.search(r"\d+\.\d+", tag), f"{name}: {image} has no version"
    dockerfile = DOCKERFILE.read_text()
    default = re.search(r"^ARG PYTHON_VERSION=(\S+)$", dockerfile, re.MULTILINE)
    assert default is not None, "docker/Dockerfile: ARG PYTHON_VERSION=<version> before FROM"
    assert default[1] == env["PYTHON_VERSION"], "Dockerfile and .env pin different Pythons"
    assert re.fullmatch(r"3\.11\.\d+-slim(-\w+)?", env["PYTHON_VERSION"])
    assert re.search(r"^FROM python:\$\{PYTHON_VERSION\}$", dockerfile, re.MULTILINE)
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    for name, service in services.items():
        if "build" in service:
            assert service["build"]["args"]["PYTHON_VERSION"] == env["PYTHON_VERSION"], name
            assert service["image"] == f"brink:{version}", name


def _field_path(variable: str) -> list[str]:
    """``BRINK_DB__POOL_MAX`` -> ``["db", "pool_max"]``, or fail when no setting has that name."""
    parts = variable.removeprefix(ENV_PREFIX).lower().split(ENV_NESTED_DELIMITER.lower())
    model: type[BaseModel] = Settings
    for depth, part in enumerate(parts):
        assert part in model.model_fields, f"{variable}: no setting {'.'.join(parts[: depth + 1])}"
        annotation = model.model_fields[part].annotation
        if depth < len(parts) - 1:
            assert isinstance(annotation, type), variable
            assert issubclass(annotation, BaseModel), f"{variable}: {part} is not a group"
            model = annotation
    return parts


def test_brink_variables_are_real_settings_with_valid_values(
    services: dict[str, dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    named = 0
    for name, service in services.items():
        brink = {k: v for k, v in _environment(service).items() if k.startswith(ENV_PREFIX)}
        for variable in brink:
            _field_path(variable)
        named += len(brink)
        with monkeypatch.context() as patch:
            for variable in [v for v in os.environ if v.startswith(ENV_PREFIX)]:
                patch.delenv(variable)
            for variable, value in brink.items():
                patch.setenv(variable, value)
            try:
                load_settings()
            except SettingsError as exc:
                pytest.fail(f"{name}: {exc}")
    assert named >= 5


def test_apps_listen_on_all_interfaces_inside_on_the_published_port(
    services: dict[str, dict[str, Any]],
) -> None:
    for name, service in services.items():
        command = _command(service)
        module = command[2] if command[:2] == ["python", "-m"] else None
        if module not in APP_LISTENERS:
            continue
        group = f"{ENV_PREFIX}{APP_LISTENERS[module]}{ENV_NESTED_DELIMITER}"
        environment = _environment(service)
        assert environment[f"{group}HOST"] == "0.0.0.0", name
        assert environment[f"{group}PORT"] in {port for _, port in _published(service)}, name


def test_dockerfile_runs_as_a_non_root_user() -> None:
    users = re.findall(r"^USER\s+(\S+)", DOCKERFILE.read_text(), re.MULTILINE)
    assert users, "docker/Dockerfile has no USER: the processes would run as root"
    user = users[-1].split(":")[0]
    assert user not in ("root", "0"), users[-1]


def test_mounted_files_exist(services: dict[str, dict[str, Any]]) -> None:
    missing: list[str] = []
    waiting: list[str] = []
    for name, service in services.items():
        for source, _ in _binds(service):
            path = (ROOT / source).resolve()
            if not path.exists():
                others = path.relative_to(ROOT).parts[0] in COLLEAGUE_DIRS
                (waiting if others else missing).append(f"{name}: {source}")
    assert not missing, f"mount sources missing: {missing}"
    if waiting:
        pytest.skip(f"mount sources not written yet (dashboards are another change): {waiting}")


def test_grafana_home_dashboard_is_a_mounted_file(services: dict[str, dict[str, Any]]) -> None:
    grafana = services["grafana"]
    home = _environment(grafana)["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    for source, target in _binds(grafana):
        if home.startswith(target + "/"):
            path = ROOT / source / home.removeprefix(target + "/")
            if not path.exists():
                pytest.skip(f"{path.relative_to(ROOT)} not written yet (dashboards change)")
            return
    pytest.fail(f"{home} is not inside any mount of the grafana service")


_PARSE_LOCUST_ARGS = textwrap.dedent(
    """
    import importlib.util, sys
    import locust.argument_parser as arguments
    spec = importlib.util.spec_from_file_location("locustfile", sys.argv[1])
    spec.loader.exec_module(importlib.util.module_from_spec(spec))  # adds brink's options
    arguments.get_parser(default_config_files=[]).parse_args(sys.argv[2:])
    """
)


def test_locust_command_lines_parse(services: dict[str, dict[str, Any]]) -> None:
    """Every option exists (Locust's own and brink's), in a child: Locust patches with gevent."""
    checked = 0
    for name, service in services.items():
        command = _command(service)
        if command[:1] != ["locust"]:
            continue
        locustfile = next(a.split("=", 1)[1] for a in command if a.startswith("--locustfile="))
        assert (ROOT / locustfile).is_file(), f"{name}: {locustfile}"
        parsed = _run(sys.executable, "-c", _PARSE_LOCUST_ARGS, locustfile, *command[1:])
        assert parsed.returncode == 0, f"{name}: {parsed.stderr.strip()}"
        checked += 1
    assert checked == 2  # master and worker


def test_workers_scale(services: dict[str, dict[str, Any]]) -> None:
    worker = services["locust-worker"]
    assert "container_name" not in worker, "a fixed name cannot scale"
    assert not worker.get("ports"), "fixed host ports cannot scale"
    assert "--worker" in _command(worker)
    assert "--master-host=locust-master" in _command(worker)
    assert "--master" in _command(services["locust-master"])


def test_backend_has_cpu_and_memory_limits(services: dict[str, dict[str, Any]]) -> None:
    for name in BACKEND:
        limits = services[name]["deploy"]["resources"]["limits"]
        assert float(limits["cpus"]) > 0, name
        assert limits["memory"], name
    for name in ("demo-service", "postgres"):
        assert float(services[name]["deploy"]["resources"]["limits"]["cpus"]) == 1.0, name


def test_prometheus_targets_are_compose_services(services: dict[str, dict[str, Any]]) -> None:
    if not PROMETHEUS_CONFIG.exists():
        pytest.skip("dashboards/prometheus/prometheus.yml not written yet (dashboards change)")
    config = yaml.safe_load(PROMETHEUS_CONFIG.read_text())
    targets = [
        target
        for job in config["scrape_configs"]
        for static in job.get("static_configs", [])
        for target in static["targets"]
    ]
    assert targets
    for target in targets:
        host, port = target.rsplit(":", 1)
        assert host in services, f"Prometheus scrapes {target}: no such compose service"
        exposed = {str(port) for port in services[host].get("expose", [])}
        ports = {p for _, p in _published(services[host])} | exposed
        assert port in ports, f"Prometheus scrapes {target}, {host} listens on {sorted(ports)}"


def test_prometheus_reads_run_targets_from_a_folder_the_repo_ships(
    services: dict[str, dict[str, Any]],
) -> None:
    """The host folder runs write their target files into is mounted (read-only) where the run
    job of prometheus.yml looks. The repo ships it: a folder Docker creates is root's, and a
    run could not write there."""
    service, mount = COMPOSE_RUN_TARGETS
    prometheus = services[service]
    (source,) = [source for source, target in _binds(prometheus) if target == mount]
    assert any(
        volume.split(":")[1:] == [mount, "ro"]
        for volume in prometheus["volumes"]
        if isinstance(volume, str)
    ), f"{mount}: mount it read-only"
    folder = ROOT / source
    assert (folder / ".keep").is_file(), f"{source} must ship (with its .keep)"
    ignored = _run("git", "check-ignore", "-q", str(folder / "generator-1-2.json"))
    kept = _run("git", "check-ignore", "-q", str(folder / ".keep"))
    if kept.returncode > 1:
        pytest.skip(f"not a git checkout: {kept.stderr.strip()}")
    assert (ignored.returncode, kept.returncode) == (0, 1), "ignore the files, ship the .keep"
    config = yaml.safe_load(PROMETHEUS_CONFIG.read_text())
    (job,) = [job for job in config["scrape_configs"] if job["job_name"] == RUN_JOB]
    assert job["file_sd_configs"][0]["files"] == [f"{mount}/*.json"]


def test_prometheus_reaches_the_host_by_its_gateway_name(
    services: dict[str, dict[str, Any]],
) -> None:
    """Docker Desktop resolves host.docker.internal on its own; Linux needs the entry."""
    extra_hosts = services[COMPOSE_RUN_TARGETS[0]].get("extra_hosts")
    assert extra_hosts == [f"host.docker.internal:{HOST_GATEWAY}"]


def test_custom_queries_match_the_native_exporter(services: dict[str, dict[str, Any]]) -> None:
    queries = yaml.safe_load(QUERIES_FILE.read_text())
    assert set(queries) == {"brink_pg"}
    query = queries["brink_pg"]
    assert " ".join(query["query"].split()) == " ".join(WAITS_QUERY.split())
    metrics = {f"brink_pg_{column}": usage for m in query["metrics"] for column, usage in m.items()}
    assert set(metrics) == {"brink_pg_lock_waits", "brink_pg_blocked_backends"}
    assert all(usage["usage"] == "GAUGE" for usage in metrics.values())
    exporter = services["postgres-exporter"]
    query_path = "/etc/postgres_exporter/queries.yaml"
    assert f"--extend.query-path={query_path}" in _command(exporter)
    assert ("./docker/postgres-exporter-queries.yaml", query_path) in set(_binds(exporter))


def test_the_project_is_called_what_docs_and_faults_assume(compose: dict[str, Any]) -> None:
    """Without ``name``, Compose names the project after the checkout's folder, and process
    faults (``DockerProcessFaults(client, "brink")``) find no container in a clone elsewhere."""
    assert compose.get("name") == PROJECT
    named = re.findall(r"DockerProcessFaults\(.*?\"([^\"]+)\"\)", FAULTS_DOC.read_text())
    assert named, "docs/faults.md no longer shows DockerProcessFaults with a project name"
    assert set(named) == {PROJECT}, f"docs/faults.md uses project {named}, Compose {PROJECT}"


def test_brink_images_are_rebuilt_on_every_up(services: dict[str, dict[str, Any]]) -> None:
    """``build`` + ``image`` alone runs whatever ``brink:<version>`` exists, however stale."""
    built = [name for name, service in services.items() if "build" in service]
    assert len(built) == 4  # demo service, slow API, Locust master and worker
    for name in built:
        assert services[name].get("pull_policy") == "build", name


def test_long_running_services_come_back_after_a_crash(
    services: dict[str, dict[str, Any]],
) -> None:
    """Every service here is long-running; ``unless-stopped`` also survives a Docker restart and
    still honours ``docker compose stop``. A fault's ``docker kill`` suspends the policy until
    its own ``docker start`` (Docker's documented behaviour), so faults keep their meaning."""
    for name, service in services.items():
        assert service.get("restart") == "unless-stopped", name


def _server_settings(service: Mapping[str, Any]) -> dict[str, str]:
    """``-c name=value`` and ``--name=value`` arguments of a ``postgres`` command."""
    command = _command(service)
    settings: dict[str, str] = {}
    for flag, value in zip(command, [*command[1:], ""], strict=True):
        if flag == "-c":
            pair = value
        elif flag.startswith("--") and "=" in flag:
            pair = flag.removeprefix("--")
        else:
            continue
        key, _, setting = pair.partition("=")
        settings[key.replace("-", "_").lower()] = setting.strip("'\"").lower()
    return settings


def test_postgres_is_durable_as_natively(services: dict[str, dict[str, Any]]) -> None:
    """None of what native mode's ``durable=False`` turns off is off here: a COMMIT returns
    after its WAL flush, so an order the service acknowledged survives a Postgres crash."""
    postgres = services["postgres"]
    assert _command(postgres)[0] == "postgres"
    settings = _server_settings(postgres)
    assert settings.get("max_connections") == "200"  # the parser reads this file's shape
    off = {"off", "false", "no", "0"}
    for key in NON_DURABLE_SETTINGS:
        assert settings.get(key, "on") not in off, f"postgres: {key}={settings[key]}"
    environment = _environment(postgres)
    for variable in ("PGOPTIONS", "POSTGRES_INITDB_ARGS"):
        assert not any(key in environment.get(variable, "") for key in NON_DURABLE_SETTINGS)


def test_the_image_installs_the_locked_versions() -> None:
    """docker/Dockerfile installs with constraints.txt, the lock scripts/bootstrap uses too."""
    dockerfile = DOCKERFILE.read_text()
    copies = re.findall(r"^COPY\s+(.+?)\s+\./$", dockerfile, re.MULTILINE)
    assert any("constraints.txt" in line.split() for line in copies), copies
    install = re.search(r"pip install (--constraint|-c) constraints\.txt ", dockerfile)
    assert install is not None, "the image's pip install does not use constraints.txt"
    assert (ROOT / "constraints.txt").is_file()
