"""The whole lab on this machine: a private Postgres, the slow API and the demo service.

Optionally also Locust's web UI with brink's locustfile, brink's Postgres exporter and a
Prometheus (when installed) scraping them all with the same rules as the Compose stack.
"""

from __future__ import annotations

import os
import secrets
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Self

from loadtests.locustfiles import BRINK_LOCUSTFILE
from loadtests.native import prometheus
from loadtests.native.port_owner import describe_port_owner
from loadtests.native.postgres import PostgresError, PrivatePostgres
from loadtests.native.process import ManagedProcess, ProcessFailed, free_port, port_is_free

ADMIN_TOKEN_ENV = "BRINK_ADMIN_TOKEN"
LocustArgs = Callable[["NativeStack"], Sequence[str]]
READY_TIMEOUT_S = 30.0


class StackError(RuntimeError):
    """The stack could not start; the message says which part and why."""


@dataclass(frozen=True)
class StackConfig:
    """Where the stack listens and what extra ``BRINK_*`` settings its processes get."""

    host: str = "127.0.0.1"
    service_port: int = 8000
    slow_api_port: int = 8001
    pg_port: int = 54329
    extra_env: Mapping[str, str] = field(default_factory=dict)
    run_dir: Path = Path(".brink/up")
    """Logs of every process, and the generated admin token."""
    locust_port: int | None = None
    """Start Locust's web UI (brink's locustfile) on this port; None: no Locust."""
    loadgen_metrics_port: int = 9646
    """The Locust master's Prometheus /metrics, when Locust runs."""
    locust_workers: int = 0
    """0: one Locust process; N: a master with N worker processes."""
    pg_exporter_port: int | None = None
    """Start brink's Postgres exporter (lock waits, activity) on this port; None: not."""
    prometheus_port: int | None = None
    """Start Prometheus (if installed) scraping everything, with brink's rules; None: not."""
    durable_postgres: bool = True
    """A COMMIT returns after its WAL flush, as in the Compose stack: an acknowledged order
    survives any Postgres crash. False (``--non-durable-postgres``) is faster and can lose them."""
    write_token_file: bool = True
    """Write a generated admin token to ``<run_dir>/admin-token`` (``brink up``: you need it to
    use the admin API). Ramps and scenarios keep it in memory, so it never lands in a report."""

    def ports(self) -> dict[str, tuple[int, str]]:
        """Each part's port and the ``brink up`` flag that changes it."""
        ports = {
            "demo service": (self.service_port, "--service-port"),
            "slow API": (self.slow_api_port, "--slow-api-port"),
            "Postgres": (self.pg_port, "--pg-port"),
        }
        if self.locust_port is not None:
            ports["Locust web UI"] = (self.locust_port, "--locust-port")
            ports["load generator metrics"] = (self.loadgen_metrics_port, "--loadgen-metrics-port")
        if self.pg_exporter_port is not None:
            ports["Postgres exporter"] = (self.pg_exporter_port, "--pg-exporter-port")
        if self.prometheus_port is not None and prometheus.available():
            ports["Prometheus"] = (self.prometheus_port, "--prometheus-port")
        return ports

    def managed_env(self) -> dict[str, str]:
        """The settings the stack owns; ``extra_env`` may not override them."""
        env = {
            "BRINK_SERVER__HOST": self.host,
            "BRINK_SERVER__PORT": str(self.service_port),
            "BRINK_SLOW_API__HOST": self.host,
            "BRINK_SLOW_API__PORT": str(self.slow_api_port),
        }
        if self.pg_exporter_port is not None:
            env["BRINK_PG_EXPORTER__HOST"] = self.host
            env["BRINK_PG_EXPORTER__PORT"] = str(self.pg_exporter_port)
        return env


class NativeStack:
    """Starts Postgres, then the slow API, then the demo service; ``stop()`` undoes it all.

    Without a ``BRINK_ADMIN_TOKEN`` (in ``extra_env`` or our environment) one is generated, given
    to both processes and written to ``<run dir>/admin-token`` (mode 0600).
    """

    def __init__(self, config: StackConfig) -> None:
        self.config = config
        self.postgres = PrivatePostgres(
            port=config.pg_port, host=config.host, durable=config.durable_postgres
        )
        self.processes: list[ManagedProcess] = []
        self.admin_token: str | None = None
        """The admin token the processes got (generated, from ``extra_env`` or our env)."""
        self.admin_token_file: Path | None = None
        self.prometheus: prometheus.NativePrometheus | None = None
        self.notes: list[str] = []
        """What the stack chose not to start, and why (e.g. no Prometheus installed)."""

    @property
    def urls(self) -> dict[str, str]:
        base = f"http://{self.config.host}"
        service = f"{base}:{self.config.service_port}"
        urls = {
            "service": service,
            "metrics": f"{service}/metrics",
            "slow_api": f"{base}:{self.config.slow_api_port}",
            "postgres": self.postgres.dsn,
        }
        if self.config.locust_port is not None:
            urls["locust"] = f"{base}:{self.config.locust_port}"
            urls["loadgen_metrics"] = f"{base}:{self.config.loadgen_metrics_port}/metrics"
        if self.config.pg_exporter_port is not None:
            urls["pg_exporter"] = f"{base}:{self.config.pg_exporter_port}/metrics"
        if self.prometheus is not None:
            urls["prometheus"] = self.prometheus.url
        return urls

    def start(self, locust_args: LocustArgs = lambda stack: ()) -> Self:
        """Start everything and wait until each part answers; on failure stop what started.

        ``locust_args(stack)`` runs once the service answers, before Locust starts: extra
        arguments for Locust's web UI (``brink up``: the form's rates, from a capacity probe).
        """
        self._check_config()
        try:
            self.postgres.start()
            env = self._child_env()
            self._start(
                "slow API", "demo_service.slow_api", env, self.urls["slow_api"] + "/healthz"
            )
            self._start("demo service", "demo_service", env, self.urls["service"] + "/readyz")
            if self.config.pg_exporter_port is not None:
                self._start(
                    "Postgres exporter", "demo_service.pg_exporter", env, self.urls["pg_exporter"]
                )
            if self.config.locust_port is not None:
                self._start_locust(locust_args(self))
            if self.config.prometheus_port is not None:
                self._start_prometheus()
        except (PostgresError, ProcessFailed, OSError) as exc:
            self.stop()
            raise StackError(str(exc)) from exc
        except BaseException:
            self.stop()
            raise
        return self

    def failure(self) -> str | None:
        """``None`` while every part runs; else which one died, with its log tail."""
        if not self.postgres.running():
            return f"Postgres is not running:\n{self.postgres.log_tail()}"
        for process in self.processes:
            if not process.running():
                return (
                    f"{process.name} exited with code {process.returncode}:\n{process.log_tail()}"
                )
        return None

    def process(self, name: str) -> ManagedProcess:
        """The running part called ``name`` (``"demo service"``, ``"slow API"`` ...)."""
        for process in self.processes:
            if process.name == name:
                return process
        known = ", ".join(process.name for process in self.processes) or "none"
        raise KeyError(f"no process {name!r} in the stack (running: {known})")

    def stop(self) -> None:
        """Stop in reverse order; keeps the logs in the run dir, leaves no process behind."""
        if self.prometheus is not None:
            self.prometheus.stop()
            self.prometheus = None
        while self.processes:
            self.processes.pop().stop()
        self.postgres.stop(keep_log=self.config.run_dir / "postgres.log")

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _check_config(self) -> None:
        managed = sorted(self.config.managed_env().keys() & self.config.extra_env.keys())
        if managed:
            raise StackError(f"{', '.join(managed)}: set by the stack itself, use its flags")
        for name, (port, flag) in self.config.ports().items():
            if not port_is_free(port, self.config.host):
                owner = describe_port_owner(port, self.config.host)
                held = f" (held by {owner})" if owner else ""
                raise StackError(
                    f"port {port} on {self.config.host} for the {name} is already in use{held}: "
                    f"choose another with {flag}"
                )

    def _child_env(self) -> dict[str, str]:
        env = {
            "BRINK_EXTERNAL__URL": self.urls["slow_api"],
            **self.config.extra_env,
            **self.config.managed_env(),
            "BRINK_DB__DSN": self.postgres.dsn,
        }
        if ADMIN_TOKEN_ENV not in env and ADMIN_TOKEN_ENV not in os.environ:
            env[ADMIN_TOKEN_ENV] = secrets.token_urlsafe(24)
            if self.config.write_token_file:
                self.admin_token_file = self._write_secret("admin-token", env[ADMIN_TOKEN_ENV])
        self.admin_token = env.get(ADMIN_TOKEN_ENV) or os.environ.get(ADMIN_TOKEN_ENV)
        return env

    def _write_secret(self, name: str, value: str) -> Path:
        self.config.run_dir.mkdir(parents=True, exist_ok=True)
        path = self.config.run_dir / name
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.fchmod(fd, 0o600)  # an older file may have looser rights
        with os.fdopen(fd, "w") as file:
            file.write(value + "\n")
        return path

    def _start(self, name: str, module: str, env: Mapping[str, str], ready_url: str) -> None:
        log = self.config.run_dir / f"{module.rpartition('.')[2]}.log"
        self._run(ManagedProcess.python_module(name, module, log, env), ready_url)

    def _start_locust(self, extra: Sequence[str]) -> None:
        """Locust's web UI with brink's locustfile, aimed at the demo service."""
        config = self.config
        argv = [
            sys.executable, "-m", "locust", "-f", str(BRINK_LOCUSTFILE),
            "--host", self.urls["service"],
            "--web-host", config.host, "--web-port", str(config.locust_port),
            "--brink-metrics-port", str(config.loadgen_metrics_port),
            *extra,
        ]  # fmt: skip
        if config.locust_workers:
            # Locust's master binds every interface by default: keep it on loopback.
            port = str(free_port(config.host))
            argv += ["--processes", str(config.locust_workers), "--master-bind-host", config.host]
            argv += [
                "--master-bind-port",
                port,
                "--master-host",
                config.host,
                "--master-port",
                port,
            ]
        log = config.run_dir / "locust.log"
        self._run(ManagedProcess("Locust", argv, log), self.urls["locust"] + "/")

    def _start_prometheus(self) -> None:
        """Prometheus with brink's rules, scraping every part that runs; a note if missing."""
        if not prometheus.available():
            self.notes.append("Prometheus is not installed (Debian: apt-get install prometheus)")
            return
        config, host = self.config, self.config.host
        targets = {
            "demo-service": f"{host}:{config.service_port}",
            "slow-api": f"{host}:{config.slow_api_port}",
        }
        if config.locust_port is not None:
            targets["locust"] = f"{host}:{config.loadgen_metrics_port}"
        if config.pg_exporter_port is not None:
            targets["postgres"] = f"{host}:{config.pg_exporter_port}"
        assert config.prometheus_port is not None
        self.prometheus = prometheus.NativePrometheus(
            config.prometheus_port, targets, config.run_dir / "prometheus"
        )
        self.prometheus.start()
        # Ready is not enough: until every target is scraped once, panels and rules show nothing.
        self.prometheus.wait_first_scrape()

    def _run(self, process: ManagedProcess, ready_url: str) -> None:
        process.log_path.unlink(missing_ok=True)  # a fresh log per run: its tail is this run's
        self.processes.append(process)
        process.start()
        process.wait_http_ready(ready_url, READY_TIMEOUT_S)
