"""Process faults on a Docker Compose project's containers, through the Docker SDK.

Containers are found by the labels Compose puts on them (``com.docker.compose.project`` and
``com.docker.compose.service``), so a scaled service is hit in all its replicas. Pause is
``docker pause`` (the cgroup freezer: connections stall, nothing is refused), restart is
``docker restart``, kill is ``docker kill`` then ``docker start``, and a CPU throttle is a live
``docker update``. Killing one Postgres backend is a ``docker exec`` of :data:`KILL_BACKEND_SH`
in the Postgres container (the official image has ``psql`` and ``pg_isready`` but no ``ps`` or
``pkill``; ``kill`` is a shell builtin): it finds a client backend in ``pg_stat_activity``,
SIGKILLs it, and waits until the server has noticed and accepts connections again. Its exit code
says how it went; its output is not needed (so nothing depends on the exec's output stream).

The CPU update must speak the unit the container was created with: Compose turns
``deploy.resources.limits.cpus`` into ``NanoCpus``, and the Engine refuses to set ``CpuQuota`` on
a container that has ``NanoCpus`` (and the other way round). The SDK's ``update_container`` only
knows ``cpu_quota``/``cpu_period``, so for ``NanoCpus`` we post the Engine API's update body
through the SDK's own low-level client (same URL, same version prefix, same error handling).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

DockerClient = Any
"""``docker.DockerClient``: untyped, and mypy would resolve ``docker`` to the repo's docker/ dir."""

COMPOSE_SERVICES = {"postgres": "postgres", "service": "demo-service", "slow_api": "slow-api"}
"""Fault part → the service name in docker-compose.yml."""
PROJECT_LABEL = "com.docker.compose.project"
SERVICE_LABEL = "com.docker.compose.service"
CPU_PERIOD_US = 100_000
STOP_TIMEOUT_S = 10
KILL_BACKEND_SH = """
export PGUSER="${POSTGRES_USER:-postgres}"
export PGDATABASE="${POSTGRES_DB:-$PGUSER}"
q() { psql -X -A -t -q -c "$1"; }
victim=$(q "SELECT pid FROM pg_stat_activity WHERE backend_type = 'client backend'
  AND datname = current_database() AND pid <> pg_backend_pid() ORDER BY backend_start LIMIT 1")
[ -n "$victim" ] || exit 3
marker=$(q "SELECT pid FROM pg_stat_activity WHERE backend_type = 'checkpointer'")
kill -9 "$victim" || exit 4
i=0
while kill -0 "$marker" 2>/dev/null || ! pg_isready -q; do
  i=$((i + 1)); [ "$i" -le 600 ] || exit 5
  sleep 0.05
done
"""
"""Kill one client backend, then wait (30 s at most) until the postmaster has noticed (the old
checkpointer is gone: a crash ends every child) and accepts connections again (``pg_isready``).
User and database come from the image's ``POSTGRES_USER`` and ``POSTGRES_DB``; the image trusts
local (unix socket) connections, so no password is needed."""
KILL_BACKEND_EXITS = {
    3: "no client backend to kill",
    4: "the backend could not be killed",
    5: "Postgres did not accept connections 30 s after the kill",
}


class DockerProcessFaults:
    """:class:`~loadtests.faults.injector.ProcessFaults` on the containers of a Compose project."""

    def __init__(
        self,
        client: DockerClient,
        project: str,
        services: Mapping[str, str] = COMPOSE_SERVICES,
    ) -> None:
        self.client = client
        self.project = project
        self.services = dict(services)
        self._cpu_at_start: dict[str, dict[str, int]] = {}
        """Container id → its CPU limits before our first update, to restore on ``None``."""

    def pause(self, part: str) -> None:
        for container in self._containers(part):
            container.pause()

    def resume(self, part: str) -> None:
        for container in self._containers(part):
            container.unpause()

    def restart(self, part: str) -> None:
        for container in self._containers(part):
            container.restart(timeout=STOP_TIMEOUT_S)

    def kill(self, part: str) -> None:
        for container in self._containers(part):
            container.kill()
            container.start()

    def kill_backend(self, part: str) -> float:
        """SIGKILL one client backend; seconds until Postgres accepts connections again.

        Measured around the exec, so it includes the backend lookup and the exec round trip
        (tens of milliseconds more than natively).
        """
        if part != "postgres":
            raise ValueError(f"{part}.kill_backend: only postgres has backends to kill")
        recovery_s = 0.0
        for container in self._containers(part):
            started = time.monotonic()
            code, output = container.exec_run(["sh", "-c", KILL_BACKEND_SH])
            if code != 0:
                reason = KILL_BACKEND_EXITS.get(code, f"exit {code}")
                said = output.decode(errors="replace").strip() if output else ""
                raise RuntimeError(f"kill_backend in {container.name}: {reason}. {said}".strip())
            recovery_s = max(recovery_s, time.monotonic() - started)
        return recovery_s

    def throttle_cpu(self, part: str, cpus: float | None) -> None:
        for container in self._containers(part):
            at_start = self._cpu_at_start.setdefault(container.id, _cpu_limits(container.attrs))
            if at_start["NanoCpus"]:
                nano = at_start["NanoCpus"] if cpus is None else round(cpus * 1e9)
                self._update(container.id, {"NanoCpus": nano})
            elif cpus is None:
                quota = at_start["CpuQuota"] or -1  # -1: no quota
                container.update(cpu_period=at_start["CpuPeriod"] or CPU_PERIOD_US, cpu_quota=quota)
            else:
                container.update(cpu_period=CPU_PERIOD_US, cpu_quota=round(cpus * CPU_PERIOD_US))

    def _update(self, container_id: str, body: dict[str, Any]) -> None:
        api = self.client.api
        response = api._post_json(api._url("/containers/{0}/update", container_id), data=body)
        api._result(response, True)

    def _containers(self, part: str) -> list[Any]:
        service = self.services.get(part)
        if service is None:
            raise ValueError(f"unknown part {part!r}: use {', '.join(self.services)}")
        labels = [f"{PROJECT_LABEL}={self.project}", f"{SERVICE_LABEL}={service}"]
        containers: list[Any] = self.client.containers.list(all=True, filters={"label": labels})
        if not containers:
            raise ValueError(
                f"no container of Compose service {service!r} in project {self.project!r}"
            )
        return containers


def _cpu_limits(attrs: Mapping[str, Any]) -> dict[str, int]:
    host = attrs.get("HostConfig") or {}
    return {key: int(host.get(key) or 0) for key in ("NanoCpus", "CpuQuota", "CpuPeriod")}
