"""The two measurements: items with metrics on vs off, and orders against the pool's capacity.

Every round starts a fresh service process, warms it up with the same load, then measures one
window. The caller owns Postgres; this module owns only the service processes it starts.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx2

from benchmarks import cpu
from benchmarks.results import ItemsRun, OrdersRun, Window
from benchmarks.service import (
    Service,
    pool_counters,
    probe_hold,
    running_service,
    wait_drained,
)
from benchmarks.wrk_runner import WrkResult, run_wrk

Progress = Callable[[str], None]


@dataclass(frozen=True)
class Bench:
    """What every measurement shares: tools, database, window lengths and limits."""

    wrk: str
    dsn: str
    log_dir: Path
    seconds: float
    warmup_s: float
    timeout_s: float
    max_failed: float
    progress: Progress
    postgres_pid: int | None = None
    """The postmaster, for the CPU use of Postgres; ``None`` to skip it."""


def _load(
    bench: Bench, service: Service, script: str, connections: int, seconds: float
) -> tuple[WrkResult, cpu.CpuUsage]:
    """One wrk run against ``service``, with the service's and the box's CPU use meanwhile."""
    before = cpu.sample(service.pid, bench.postgres_pid)
    result = run_wrk(
        bench.wrk, service.base_url, script,
        connections=connections, duration_s=seconds, timeout_s=bench.timeout_s,
    )  # fmt: skip
    return result, cpu.sample(service.pid, bench.postgres_pid).usage_since(before)


def _measure(bench: Bench, service: Service, script: str, connections: int) -> Window:
    """Warm up with the same load, then one measured window."""
    _load(bench, service, script, connections, bench.warmup_s)
    result, usage = _load(bench, service, script, connections, bench.seconds)
    return Window.of(result, usage, bench.max_failed)


def _describe(window: Window) -> str:
    failed = f"{window.failed} failed" + ("" if window.valid else " — INVALID")
    return (
        f"{window.ok_per_s:8.1f} 2xx/s  p99 {window.latency_ms['p99']:6.1f} ms  {failed};"
        f" cores: service {window.service_cores:.2f}, wrk {window.wrk_cores:.2f},"
        f" postgres {window.postgres_cores:.2f}, other {window.other_cores:.2f}"
    )


def items_order(round_no: int) -> tuple[bool, bool]:
    """Metrics on then off in odd rounds, off then on in even ones (cancels drift)."""
    return (True, False) if round_no % 2 else (False, True)


def run_items(bench: Bench, rounds: int, connections: int) -> list[ItemsRun]:
    """``GET /items/{id}`` at max rate, metrics on vs off, alternating over ``rounds``."""
    runs = []
    for round_no in range(1, rounds + 1):
        for metrics in items_order(round_no):
            label = f"items r{round_no} metrics={'on' if metrics else 'off'}"
            settings = {"BRINK_SERVER__METRICS_ENABLED": str(metrics).lower()}
            name = label.replace(" ", "-").replace("=", "-")
            with running_service(name, bench.dsn, bench.log_dir, settings) as service:
                window = _measure(bench, service, "items", connections)
            bench.progress(f"{label:<24} {_describe(window)}")
            runs.append(ItemsRun(round_no, metrics, window))
    return runs


def orders_connections(pool: int) -> int:
    """Concurrency well above the pool, so the pool is the bottleneck: 4 x pool + 8."""
    return 4 * pool + 8


def run_orders(
    bench: Bench, pools: list[int], rounds: int, hold_s: float, probe_orders: int
) -> list[OrdersRun]:
    """For each pool size and round: probe the hold time, then saturate ``POST /orders``."""
    runs = []
    for round_no in range(1, rounds + 1):
        for pool in pools:
            run = _orders_round(bench, round_no, pool, hold_s, probe_orders)
            bench.progress(
                f"{f'orders r{round_no} pool={pool}':<24} hold {run.hold_s * 1000:.2f} ms,"
                f" predicted {run.predicted_per_s:.1f}/s, {_describe(run.window)}"
            )
            runs.append(run)
    return runs


def _orders_round(
    bench: Bench, round_no: int, pool: int, hold_s: float, probe_orders: int
) -> OrdersRun:
    settings = {
        "BRINK_DB__POOL_MAX": str(pool),
        "BRINK_DB__POOL_MIN": str(pool),
        "BRINK_DB__EXTRA_LATENCY_S": str(hold_s),
        "BRINK_SERVER__METRICS_ENABLED": "true",
    }
    connections = orders_connections(pool)
    name = f"orders-r{round_no}-pool-{pool}"
    with (
        running_service(name, bench.dsn, bench.log_dir, settings) as service,
        httpx2.Client(base_url=service.base_url, timeout=bench.timeout_s) as client,
    ):
        _load(bench, service, "orders", connections, bench.warmup_s)
        wait_drained(client)
        hold = probe_hold(client, probe_orders)
        before = pool_counters(client)
        result, usage = _load(bench, service, "orders", connections, bench.seconds)
        wait_drained(client)
        after = pool_counters(client)
    window = Window.of(result, usage, bench.max_failed)
    return OrdersRun(
        round=round_no,
        pool=pool,
        connections=connections,
        hold_s=hold,
        hold_under_load_s=after.hold_since(before),
        pool_utilisation=after.utilisation_since(before, pool),
        window=window,
    )
