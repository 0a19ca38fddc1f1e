"""Stand-ins for a running stack: its knob APIs in memory, behind httpx2.MockTransport (the
service's ``/admin/faults`` and ``/admin/resilience`` and the slow API's ``/control``, with the
servers' update rules: a PUT changes the knobs it names; a preset drops the overrides, then the
body's groups apply), and the PID of a process that is gone."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from typing import Any

import httpx2

SERVICE, SLOW_API = "http://127.0.0.1:18000", "http://127.0.0.1:18001"
TOKEN = "fake-stack-admin-token"


class FakeStack:
    def __init__(self) -> None:
        self.faults: dict[str, Any] = {
            "db_latency_s": 0.0,
            "hot_row_lock_s": 0.0,
            "hot_items": 10,
            "cpu_burn_iterations": 0,
            "pool_size": 5,
            "pool_min": 1,
            "external_pool_size": 10,
            "external_keepalive": 10,
        }
        self.preset = "fragile"
        self.overrides: dict[str, dict[str, Any]] = {}
        self.control: dict[str, Any] = {
            "base_latency_s": 0.02,
            "jitter_sigma": 0.5,
            "capacity": 20,
            "error_rate": 0.0,
            "extra_latency_s": 0.0,
            "outage": "none",
        }
        self.calls: list[tuple[str, str, Any]] = []
        self.failing: set[str] = set()
        """Paths that answer 500 (a server that broke)."""

    @property
    def transport(self) -> httpx2.MockTransport:
        return httpx2.MockTransport(self.handle)

    def state(self) -> dict[str, Any]:
        return copy.deepcopy(
            {
                "faults": self.faults,
                "preset": self.preset,
                "overrides": self.overrides,
                "control": self.control,
            }
        )

    def handle(self, request: httpx2.Request) -> httpx2.Response:
        body = json.loads(request.content) if request.content else None
        path = request.url.path
        self.calls.append((request.method, path, body))
        if request.headers.get("authorization") != f"Bearer {TOKEN}":
            return httpx2.Response(401, json={"detail": "bad token"})
        if path in self.failing:
            return httpx2.Response(500, text="broken")
        if path == "/control" and str(request.url).startswith(SLOW_API):
            return self._knobs(self.control, request.method, body)
        if path == "/admin/faults" and str(request.url).startswith(SERVICE):
            return self._knobs(self.faults, request.method, body)
        if path == "/admin/resilience" and str(request.url).startswith(SERVICE):
            return self._resilience(request.method, body)
        return httpx2.Response(404)

    def _knobs(self, knobs: dict[str, Any], method: str, body: Any) -> httpx2.Response:
        if method == "PUT":
            unknown = set(body) - set(knobs)
            if unknown:
                return httpx2.Response(422, json={"detail": f"unknown knob {sorted(unknown)}"})
            knobs.update(body)
        return httpx2.Response(200, json=knobs)

    def _resilience(self, method: str, body: Any) -> httpx2.Response:
        if method == "PUT":
            body = dict(body)
            if "preset" in body:
                self.preset, self.overrides = body.pop("preset"), {}
            for group, knobs in body.items():
                self.overrides.setdefault(group, {}).update(knobs)
        answer = {"preset": self.preset, "overrides": self.overrides, "effective": {}}
        return httpx2.Response(200, json=answer)


def dead_pid() -> int:
    """The PID of a process that has exited and been reaped (a stale stack.json's, a lock's)."""
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    return int(done.stdout)
