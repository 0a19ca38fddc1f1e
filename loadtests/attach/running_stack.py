"""Find and describe a running stack: ``brink up``'s own description, or the Compose lab's files.

``brink up`` writes ``<run dir>/stack.json`` once every part is ready (:func:`publish`) and
removes it when it stops (:func:`unpublish`): every URL, the admin token's *file* (never the
token), each process's PID, the Postgres data dir and durability, and the folder its Prometheus
reads extra scrape targets from. A file whose PIDs are gone (a ``brink up`` killed with SIGKILL)
is stale, and refused.

The Compose lab is described by its own files: the loopback ports ``docker-compose.yml``
publishes, the Postgres password and admin token of ``.env``, and the host folder its
Prometheus reads run target files from, with the name by which that container reaches this
machine (:func:`find_compose`).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import yaml
from dotenv import dotenv_values

from loadtests.native._binaries import alive
from loadtests.native.postgres import NON_DURABLE_SETTINGS
from loadtests.native.stack import ADMIN_TOKEN_ENV, StackError

if TYPE_CHECKING:
    from loadtests.native.stack import NativeStack

STACK_FILE = "stack.json"
FORMAT = 1
"""Version of ``stack.json``; a file of another version is refused, not guessed at."""
COMPOSE_FILE = "docker-compose.yml"
ENV_FILE = ".env"
COMPOSE_LISTENERS: Mapping[str, tuple[str, int, str]] = {
    "service": ("demo-service", 8000, ""),
    "metrics": ("demo-service", 8000, "/metrics"),
    "slow_api": ("slow-api", 8001, ""),
    "locust": ("locust-master", 8089, ""),
    "loadgen_metrics": ("locust-master", 9646, "/metrics"),
    "pg_exporter": ("postgres-exporter", 9187, "/metrics"),
    "prometheus": ("prometheus", 9090, ""),
}
"""URL name → (Compose service, port inside its container, path). The host side of each port
is read from the Compose file, never repeated here."""
COMPOSE_POSTGRES = ("postgres", 5432)
COMPOSE_RUN_TARGETS = ("prometheus", "/etc/prometheus-runs")
"""(Compose service, folder inside its container) of the run job's target files
(``dashboards/prometheus/prometheus.yml``); the host folder mounted there is read from the
Compose file. Not under ``/etc/prometheus``: that mount is read-only, and Docker could not
create a mount point inside it."""
HOST_GATEWAY = "host-gateway"
"""The ``extra_hosts`` value Docker replaces with the host's address as containers see it."""
_VARIABLE = re.compile(r"\$\{(\w+)(?::?[-?][^}]*)?\}")
_EXTRA_HOST = re.compile(r"\s*([^=:\s]+)\s*[=:]\s*(.*?)\s*")

Kind = Literal["native", "compose"]


class AttachError(RuntimeError):
    """No usable running stack; the message says what is missing and what to do."""


@dataclass(frozen=True)
class RunningStack:
    """A stack that runs on this machine, as a ramp or a scenario attached to it sees it."""

    kind: Kind
    urls: Mapping[str, str]
    """``service``, ``metrics``, ``slow_api``, ``postgres`` (a DSN), and, when they run,
    ``locust``, ``loadgen_metrics``, ``pg_exporter``, ``prometheus``."""
    admin_token_file: Path | None = None
    """Native: where ``brink up`` wrote the token it generated; None when it was given one."""
    pids: Mapping[str, int] = field(default_factory=dict)
    """Native: part name (``"brink up"``, ``"demo service"``, ``"Postgres"`` ...) → PID."""
    postgres_data_dir: Path | None = None
    durable_postgres: bool | None = None
    """A COMMIT waits for its WAL flush; None: not known."""
    prometheus_targets_dir: Path | None = None
    """The folder whose ``*.json`` target files the stack's Prometheus scrapes: natively in
    ``brink up``'s run dir; under Compose the host side of the Prometheus container's mount."""
    host_from_prometheus: str | None = None
    """Compose: the name the stack's Prometheus reaches this machine by (the Compose file's
    ``host-gateway`` entry, ``host.docker.internal``): target files list it instead of
    127.0.0.1. None: the stack's Prometheus shares this machine's loopback."""
    compose_project: str | None = None
    env_file: Path | None = None
    """Compose: the ``.env`` that holds the lab's admin token."""

    @property
    def service_url(self) -> str:
        return self.urls["service"]

    @property
    def slow_api_url(self) -> str:
        return self.urls["slow_api"]

    @property
    def dsn(self) -> str:
        return self.urls["postgres"]

    def to_dict(self) -> dict[str, Any]:
        data = {key: str(value) if isinstance(value, Path) else value
                for key, value in asdict(self).items()}  # fmt: skip
        return {"format": FORMAT, **data}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RunningStack:
        """The description in ``data``; ValueError/KeyError/TypeError when it is not one."""
        if data.get("format") != FORMAT:
            raise ValueError(f"format {data.get('format')!r}, expected {FORMAT}")
        paths = ("admin_token_file", "postgres_data_dir", "prometheus_targets_dir", "env_file")
        fields = {key: value for key, value in data.items() if key != "format"}
        for key in paths:
            fields[key] = None if fields.get(key) is None else Path(fields[key])
        stack = cls(**fields)
        if stack.kind not in ("native", "compose") or not {"service", "slow_api"} <= set(
            stack.urls
        ):
            raise ValueError("no service or slow API URL")
        if not all(isinstance(pid, int) for pid in stack.pids.values()):
            raise TypeError("a PID that is not a number")
        return stack


# --- brink up's side ---------------------------------------------------------------------------


def describe_native(stack: NativeStack) -> RunningStack:
    """What ``stack`` (started) is, for a driver that attaches to it."""
    pids = {"brink up": os.getpid(), **{process.name: process.pid for process in stack.processes}}
    if (postgres := stack.postgres.pid) is not None:
        pids["Postgres"] = postgres
    prometheus = stack.prometheus
    if prometheus is not None and prometheus.process is not None:
        pids["Prometheus"] = prometheus.process.pid
    return RunningStack(
        kind="native",
        urls=dict(stack.urls),
        admin_token_file=stack.admin_token_file,
        pids=pids,
        postgres_data_dir=stack.postgres.data_dir if stack.postgres.temp_dir else None,
        durable_postgres=stack.config.durable_postgres,
        prometheus_targets_dir=prometheus.targets_dir if prometheus is not None else None,
    )


def publish(stack: NativeStack) -> Path:
    """Write ``<run dir>/stack.json`` for ``stack`` (atomically: readers never see half)."""
    path = stack.config.run_dir / STACK_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".json.partial")
    partial.write_text(json.dumps(describe_native(stack).to_dict(), indent=2) + "\n")
    partial.replace(path)
    return path


def claim(run_dir: Path) -> None:
    """Refuse a second ``brink up`` on the run dir of a live one: it would overwrite the
    first one's admin token and ``stack.json`` under that one's users."""
    try:
        running = find_native(run_dir)
    except AttachError:
        return  # none there, or a stale one: the run dir is free
    raise StackError(
        f"another brink up (pid {running.pids.get('brink up')}) runs with the run dir "
        f"{run_dir}: stop it, or give this one another --run-dir"
    )


def unpublish(run_dir: Path) -> None:
    """Remove ``<run dir>/stack.json`` if this process wrote it (a second ``brink up`` that
    failed to start on the same run dir must not remove the first one's)."""
    path = run_dir / STACK_FILE
    try:
        owner = json.loads(path.read_text()).get("pids", {}).get("brink up")
    except (OSError, ValueError, AttributeError):
        return
    if owner == os.getpid():
        path.unlink(missing_ok=True)


# --- the attaching side ------------------------------------------------------------------------


def find_native(stack_dir: Path) -> RunningStack:
    """The stack ``brink up --run-dir stack_dir`` runs; :class:`AttachError` if none does."""
    path = stack_dir / STACK_FILE
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise AttachError(
            f"no running `brink up` found: {path} does not exist (start `brink up`, or give "
            "--stack-dir the --run-dir it was started with)"
        ) from None
    try:
        stack = RunningStack.from_dict(json.loads(text))
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise AttachError(f"{path} is not a stack description brink can read: {exc}") from None
    dead = [f"{name} (pid {pid})" for name, pid in sorted(stack.pids.items()) if not alive(pid)]
    if dead or not stack.pids:
        raise AttachError(
            f"{path} is stale: {', '.join(dead) or 'no process'} no longer running; the "
            "`brink up` that wrote it did not stop cleanly. Delete the file and start brink up"
        )
    return stack


def find_compose(root: Path, environ: Mapping[str, str] = os.environ) -> RunningStack:
    """The Compose lab of ``root`` (its ``docker-compose.yml`` and ``.env``) on its published
    loopback ports. Whether it is up is for the first request to find out."""
    compose_path, env_path = root / COMPOSE_FILE, root / ENV_FILE
    try:
        compose = yaml.safe_load(compose_path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise AttachError(f"cannot read the Compose file {compose_path}: {exc}") from None
    variables = {**_env_file(env_path), **environ}  # the shell wins, as with `docker compose`
    services = compose.get("services") or {}
    urls = {}
    for name, (service, port, path) in COMPOSE_LISTENERS.items():
        published = _published(services.get(service) or {}, port, variables)
        if published is not None:
            urls[name] = f"http://{published}{path}"
    for needed in ("service", "slow_api"):
        if needed not in urls:
            service, port, _ = COMPOSE_LISTENERS[needed]
            raise AttachError(f"{compose_path}: service {service} publishes no port {port}")
    postgres = services.get(COMPOSE_POSTGRES[0]) or {}
    dsn = _compose_dsn(postgres, variables)
    if dsn is not None:
        urls["postgres"] = dsn
    targets_dir, host = _run_targets(services.get(COMPOSE_RUN_TARGETS[0]) or {}, root, variables)
    return RunningStack(
        kind="compose",
        urls=urls,
        durable_postgres=not _non_durable(postgres),
        prometheus_targets_dir=targets_dir,
        host_from_prometheus=host,
        compose_project=compose.get("name") or environ.get("COMPOSE_PROJECT_NAME") or root.name,
        env_file=env_path if env_path.exists() else None,
    )


def admin_token(stack: RunningStack, environ: Mapping[str, str] = os.environ) -> str:
    """The stack's admin token: ``BRINK_ADMIN_TOKEN`` here, else ``brink up``'s token file,
    else the Compose lab's ``.env``. Never a command-line flag: it would land in ``ps``."""
    if token := environ.get(ADMIN_TOKEN_ENV):
        return token
    if stack.admin_token_file is not None:
        try:
            token = stack.admin_token_file.read_text().strip()
        except OSError as exc:
            raise AttachError(f"cannot read the admin token file: {exc}") from None
        if token:
            return token
    if stack.env_file is not None and (token := _env_file(stack.env_file).get(ADMIN_TOKEN_ENV)):
        return token
    where = {"native": "brink up was given one: set the same", "compose": "set it in .env or"}
    raise AttachError(f"no admin token for the {stack.kind} stack; {where[stack.kind]} "
                      f"{ADMIN_TOKEN_ENV} in this shell")  # fmt: skip


def _env_file(path: Path) -> dict[str, str]:
    if not path.exists():
        return {}
    return {key: value for key, value in dotenv_values(path).items() if value is not None}


def _interpolate(text: str, variables: Mapping[str, str]) -> str:
    """``${NAME}``, ``${NAME:-default}``, ``${NAME:?error}`` as Compose reads them."""

    def value(match: re.Match[str]) -> str:
        whole, name = match.group(0), match.group(1)
        if name in variables:
            return variables[name]
        default = re.fullmatch(r"\$\{\w+:?-(.*)\}", whole)
        return default.group(1) if default else ""

    return _VARIABLE.sub(value, text)


def _published(service: Mapping[str, Any], port: int, variables: Mapping[str, str]) -> str | None:
    """``host:port`` on which ``service`` publishes its container ``port``, or None."""
    for entry in service.get("ports") or []:
        if isinstance(entry, Mapping):  # the long syntax
            target, published = str(entry.get("target")), str(entry.get("published", ""))
            host = str(entry.get("host_ip") or "127.0.0.1")
        else:
            parts = _interpolate(str(entry), variables).split("/")[0].rsplit(":", 2)
            if len(parts) < 2:
                continue
            host = parts[0] if len(parts) == 3 else "127.0.0.1"
            published, target = parts[-2], parts[-1]
        if target == str(port) and published.isdigit():
            return f"{host or '127.0.0.1'}:{published}"
    return None


def _run_targets(
    prometheus: Mapping[str, Any], root: Path, variables: Mapping[str, str]
) -> tuple[Path, str] | tuple[None, None]:
    """The host folder mounted on the Prometheus container's run-targets folder, and the name
    that container reaches this machine by; (None, None) unless the Compose file has both."""
    source = _bind_source(prometheus, COMPOSE_RUN_TARGETS[1], variables)
    host = _gateway_name(prometheus)
    if source is None or host is None:
        return None, None
    return root / Path(source).expanduser(), host


def _bind_source(
    service: Mapping[str, Any], target: str, variables: Mapping[str, str]
) -> str | None:
    """The host path ``service`` bind-mounts on ``target`` (as written: maybe relative)."""
    for entry in service.get("volumes") or []:
        if isinstance(entry, Mapping):  # the long syntax
            if entry.get("type") == "bind" and entry.get("target") == target:
                return _interpolate(str(entry.get("source", "")), variables) or None
        else:  # SOURCE:TARGET[:MODE]
            parts = _interpolate(str(entry), variables).split(":")
            if len(parts) >= 2 and parts[1] == target and parts[0]:
                return parts[0]
    return None


def _gateway_name(service: Mapping[str, Any]) -> str | None:
    """The ``extra_hosts`` name ``service`` maps to Docker's ``host-gateway``, or None."""
    extra_hosts = service.get("extra_hosts") or []
    if isinstance(extra_hosts, Mapping):
        lines = [f"{name}={value}" for name, value in extra_hosts.items()]
    else:  # "name:address"; Compose v2 also takes "name=address"
        lines = [str(line) for line in extra_hosts]
    for line in lines:
        entry = _EXTRA_HOST.fullmatch(line)
        if entry is not None and entry.group(2) == HOST_GATEWAY:
            return entry.group(1)
    return None


def _compose_dsn(postgres: Mapping[str, Any], variables: Mapping[str, str]) -> str | None:
    published = _published(postgres, COMPOSE_POSTGRES[1], variables)
    if published is None:
        return None
    declared = postgres.get("environment") or {}
    if not isinstance(declared, Mapping):  # the list syntax: ["KEY=VALUE", ...]
        declared = dict(str(line).partition("=")[::2] for line in declared)
    env = {key: _interpolate(str(value), variables) for key, value in declared.items()}
    user = env.get("POSTGRES_USER", "postgres")
    password = env.get("POSTGRES_PASSWORD", "")
    secret = f":{password}" if password else ""
    return f"postgresql://{user}{secret}@{published}/{env.get('POSTGRES_DB', user)}"


def _non_durable(postgres: Mapping[str, Any]) -> bool:
    command = postgres.get("command") or []
    words = command.split() if isinstance(command, str) else [str(word) for word in command]
    off = {f"{name}={value}" for name, value in NON_DURABLE_SETTINGS.items()}
    return bool(off & set(words))
