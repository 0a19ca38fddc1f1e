"""The end-of-run table (stdout) and the same results as JSON (``--json PATH``)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from benchmarks.results import (
    ItemsRun,
    ItemsSummary,
    OrdersRun,
    OrdersSummary,
    Window,
    median,
)

OTHER_LOAD_WARNING = 0.2
"""Busy cores from processes outside the benchmark above which the table warns of noise."""


@dataclass(frozen=True)
class Report:
    """Everything one benchmark run measured, plus how it was configured."""

    config: dict[str, Any]
    items: list[ItemsRun] = field(default_factory=list)
    orders: list[OrdersRun] = field(default_factory=list)
    wall_s: float = 0.0

    @property
    def items_summary(self) -> ItemsSummary | None:
        return ItemsSummary.of(self.items) if self.items else None

    @property
    def orders_summaries(self) -> list[OrdersSummary]:
        pools = sorted({run.pool for run in self.orders})
        return [OrdersSummary.of(pool, self.orders) for pool in pools]

    @property
    def windows(self) -> list[Window]:
        return [r.window for r in self.items] + [r.window for r in self.orders]

    @property
    def invalid(self) -> int:
        """Windows with too many failures to count as a throughput figure."""
        return sum(not w.valid for w in self.windows)


def _num(value: float | None, spec: str = ".1f", width: int = 9) -> str:
    return f"{'—' if value is None else format(value, spec):>{width}}"


def _round_cells(windows: list[Window]) -> str:
    return "".join(_num(w.ok_per_s) + ("!" if not w.valid else " ") for w in windows)


def _items_lines(report: Report) -> list[str]:
    summary = report.items_summary
    if summary is None:
        return []
    cfg = report.config
    rounds = max(r.round for r in report.items)
    head = "".join(f"{'round ' + str(n):>10}" for n in range(1, rounds + 1))
    lines = [
        f"(a) GET /items/{{id}} (random id 1..1000), {cfg['items_connections']} connections:"
        " HTTP metrics middleware on vs off",
        f"    {'max 2xx/s':<13}{head}{'median':>10}{'CPU µs/req':>12}",
    ]
    for metrics, value, cpu_us in (
        (True, summary.on_per_s, summary.on_cpu_us),
        (False, summary.off_per_s, summary.off_cpu_us),
    ):
        windows = [r.window for r in report.items if r.metrics is metrics]
        label = f"metrics {'on' if metrics else 'off'}"
        cells = _round_cells(windows) + _num(value, ".1f", 10) + _num(cpu_us, ".0f", 12)
        lines.append(f"    {label:<13}{cells}")
    verdict = {None: "no valid figure", True: "meets goal", False: "BELOW GOAL"}
    pairs = "".join(_num(v, ".3f") + " " for v in summary.round_ratios.values())
    lines += [
        f"    {'on / off':<13}{pairs}{_num(summary.on_over_off, '.3f', 10)}"
        f"{_num(summary.cpu_off_over_on, '.3f', 12)}",
        f"    goal: on / off (ratio of medians) ≥ {summary.goal:.2f}:"
        f" {verdict[summary.meets_goal]}",
    ]
    return lines


def _orders_lines(report: Report) -> list[str]:
    if not report.orders:
        return []
    cfg = report.config
    lines = [
        f"(b) POST /orders (fresh Idempotency-Key each), DB hold {cfg['hold_s'] * 1000:g} ms"
        f" (pg_sleep): medians over rounds",
        "    pool  conns  hold ms  predicted/s  measured/s  meas/pred  hold@load ms  pool busy",
    ]
    for s in report.orders_summaries:
        connections = next(r.connections for r in report.orders if r.pool == s.pool)
        lines.append(
            f"    {s.pool:>4}  {connections:>5}{_num(s.hold_ms, '.2f')}"
            f"{_num(s.predicted_per_s, '.1f', 13)}{_num(s.measured_per_s, '.1f', 12)}"
            f"{_num(s.measured_over_predicted, '.3f', 11)}{_num(s.hold_under_load_ms, '.2f', 14)}"
            f"{_num(s.pool_utilisation, '.2f', 11)}"
        )
    for s in report.orders_summaries:
        runs = [r for r in report.orders if r.pool == s.pool]
        cells = ", ".join(
            f"{r.window.ok_per_s:.1f}/{r.predicted_per_s:.1f}" + ("!" if not r.window.valid else "")
            for r in runs
        )
        lines.append(f"    pool {s.pool} per round, measured/predicted: {cells}")
    return lines


def _health_lines(report: Report) -> list[str]:
    windows = report.windows
    failed = sum(w.failed for w in windows)
    lines = [
        f"CPU (median cores, {report.config['cpus']} on this box): service "
        f"{_num(median(w.service_cores for w in windows), '.2f', 0)}, wrk "
        f"{_num(median(w.wrk_cores for w in windows), '.2f', 0)}, postgres "
        f"{_num(median(w.postgres_cores for w in windows), '.2f', 0)}, other processes "
        f"{_num(median(w.other_cores for w in windows), '.2f', 0)}, whole box "
        f"{_num(median(w.box_cores for w in windows), '.2f', 0)}",
        f"non-2xx and socket errors: {failed} in all measured windows",
    ]
    other = median(w.other_cores for w in windows)
    if other is not None and other > OTHER_LOAD_WARNING:
        lines.append(
            f"! other processes kept {other:.2f} cores busy during the windows: the service,"
            " wrk and Postgres competed for CPU, so expect extra noise between rounds"
        )
    if report.invalid:
        lines.append(
            f"! {report.invalid} window(s) had more than {report.config['max_failed']:.0%} "
            "failures: left out of the medians"
        )
    return lines


def format_report(report: Report) -> str:
    """The side-by-side table printed at the end."""
    cfg = report.config
    title = (
        f"brink backend benchmark: {cfg['rounds']} round(s) x {cfg['seconds']:g} s"
        f" (after {cfg['warmup_s']:g} s warm-up), wrk 1 thread, one uvicorn worker,"
        f" wall {report.wall_s:.0f} s"
    )
    sections = [[title], _items_lines(report), _orders_lines(report), _health_lines(report)]
    return "\n\n".join("\n".join(lines) for lines in sections if lines)


def _window_json(window: Window) -> dict[str, Any]:
    return {
        **dataclasses.asdict(window),
        "other_cores": window.other_cores,
        "service_cpu_us_per_ok": window.service_cpu_us_per_ok,
    }


def to_json(report: Report) -> dict[str, Any]:
    """The report as plain JSON data: config, summaries, and every round."""
    summary = report.items_summary
    return {
        "config": report.config,
        "wall_s": report.wall_s,
        "invalid_windows": report.invalid,
        "items": None
        if summary is None
        else {
            "summary": dataclasses.asdict(summary),
            "runs": [
                {"round": r.round, "metrics": r.metrics, **_window_json(r.window)}
                for r in report.items
            ],
        },
        "orders": {
            "summary": [dataclasses.asdict(s) for s in report.orders_summaries],
            "runs": [
                {
                    "round": r.round,
                    "pool": r.pool,
                    "connections": r.connections,
                    "hold_s": r.hold_s,
                    "predicted_per_s": r.predicted_per_s,
                    "measured_over_predicted": r.measured_over_predicted,
                    "hold_under_load_s": r.hold_under_load_s,
                    "pool_utilisation": r.pool_utilisation,
                    **_window_json(r.window),
                }
                for r in report.orders
            ],
        },
    }
