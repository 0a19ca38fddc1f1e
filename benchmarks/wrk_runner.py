"""Runs wrk (1 thread, bounded by ``-d`` and ``--timeout``) with a brink Lua script.

The scripts in ``benchmarks/wrk/`` share ``report.lua``, which counts 2xx and non-2xx responses
and prints one ``BRINK_WRK {json}`` line that :func:`run_wrk` parses into a :class:`WrkResult`.
"""

from __future__ import annotations

import json
import os
import resource
import secrets
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SCRIPTS = Path(__file__).with_name("wrk")
_MARKER = "BRINK_WRK "
_APT_TIMEOUT_S = 300


class WrkError(RuntimeError):
    """wrk is missing, failed, or printed no result line."""


@dataclass(frozen=True)
class WrkResult:
    """One wrk run: what was sent, what came back, and the CPU wrk itself used."""

    duration_s: float
    requests: int
    ok: int
    non2xx: dict[str, int]
    socket_errors: dict[str, int]
    latency_ms: dict[str, float]
    wrk_cpu_s: float

    @property
    def ok_per_s(self) -> float:
        """Throughput counting 2xx responses only."""
        return self.ok / self.duration_s if self.duration_s > 0 else 0.0

    @property
    def failed(self) -> int:
        """Non-2xx responses plus socket errors (connect, read, write, timeout)."""
        return sum(self.non2xx.values()) + sum(self.socket_errors.values())

    @property
    def failed_fraction(self) -> float:
        attempts = self.ok + self.failed
        return self.failed / attempts if attempts else 1.0


def ensure_wrk() -> str:
    """The path of ``wrk``; installs the Debian package when missing and we are root."""
    found = shutil.which("wrk")
    if found:
        return found
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        raise WrkError(
            "wrk is not installed: install it (Debian/Ubuntu: `apt-get install -y "
            "--no-install-recommends wrk`, macOS: `brew install wrk`) and run again"
        )
    _apt_install("wrk")
    found = shutil.which("wrk")
    if not found:
        raise WrkError("apt-get installed wrk but it is not on PATH")
    return found


def _apt_install(package: str) -> None:
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "-q", "--no-install-recommends", package]
    for attempt in ([install], [["apt-get", "update", "-q"], install]):
        if all(_quiet(command, env) for command in attempt):
            return
    raise WrkError(f"`{' '.join(install)}` failed: install wrk yourself and run again")


def _quiet(command: list[str], env: dict[str, str]) -> bool:
    try:
        result = subprocess.run(
            command, env=env, capture_output=True, timeout=_APT_TIMEOUT_S, check=False
        )
    except subprocess.TimeoutExpired:
        return False
    return result.returncode == 0


def run_wrk(
    wrk: str,
    url: str,
    script: str,
    *,
    connections: int,
    duration_s: float,
    timeout_s: float,
    items: int = 1000,
) -> WrkResult:
    """Run ``benchmarks/wrk/<script>.lua`` against ``url`` for ``duration_s`` on one thread."""
    argv = [
        wrk, "-t1", f"-c{connections}", f"-d{max(1, round(duration_s))}s",
        f"--timeout={max(1, round(timeout_s))}s", "-s", str(SCRIPTS / f"{script}.lua"),
        url, "--", str(secrets.randbits(31)), str(items),
    ]  # fmt: skip
    env = {**os.environ, "LUA_PATH": f"{SCRIPTS}/?.lua;;"}
    before = _children_cpu_s()
    try:
        result = subprocess.run(
            argv,
            env=env,
            capture_output=True,
            text=True,
            timeout=duration_s + timeout_s + 30,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise WrkError(f"wrk did not finish: {' '.join(argv)}") from exc
    cpu_s = _children_cpu_s() - before
    if result.returncode != 0:
        raise WrkError(f"wrk failed (exit {result.returncode}): {result.stderr.strip()}")
    return _parse(result.stdout, cpu_s)


def _children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _parse(stdout: str, cpu_s: float) -> WrkResult:
    line = next((ln for ln in stdout.splitlines() if ln.startswith(_MARKER)), None)
    if line is None:
        raise WrkError(f"wrk printed no {_MARKER.strip()} line:\n{stdout[-2000:]}")
    data: dict[str, Any] = json.loads(line[len(_MARKER) :])
    return WrkResult(
        duration_s=data["duration_us"] / 1e6,
        requests=data["requests"],
        ok=data["ok"],
        non2xx=dict(data["non2xx"]),
        socket_errors={k: v for k, v in data["errors"].items() if v},
        latency_ms={k: v / 1000 for k, v in data["latency_us"].items()},
        wrk_cpu_s=cpu_s,
    )
