"""Pressure points: which resource saturates first (DB pool and locks, slow API, CPU)."""

from __future__ import annotations

from . import common as r
from .kit import Json, dashboard, dashed, right_axis, row, stat, thresholds, timeseries

_UP = thresholds(("red", None), ("green", 1))
_SERVICES = 'job=~"demo-service|slow-api"'


def _db() -> list[Json]:
    return [
        row("DB pool and locks"),
        timeseries(
            "Connections held, by route",
            "short",
            "Mean connections checked out per route (the rate of busy seconds). Stacked up "
            "to the dashed max: the pool is the bottleneck.",
            {"{{route}}": r.POOL_BY_ROUTE, "pool max": "max(brink_db_pool_max)"},
            w=8,
            stack=True,
            overrides=[dashed("pool max")],
        ),
        timeseries(
            "Waiting for a connection",
            "s",
            "Time to check a connection out of the pool (log scale).",
            r.quantiles(r.POOL_WAIT, which=("0.95",))
            | {"mean": r.mean_of("brink_db_pool_acquire_wait_seconds")},
            w=8,
            log=True,
        ),
        timeseries(
            "Pool waiters and give-ups",
            "short",
            "Requests queued for a connection (mean and now); acquire timeouts answer 503 (right).",
            {
                "waiters (mean)": r.POOL_WAITERS,
                "waiters (now)": "sum(brink_db_pool_waiters)",
                "timeouts": r.POOL_TIMEOUTS,
            },
            w=8,
            overrides=[right_axis("timeouts", "ops")],
        ),
        timeseries(
            "Hold time and pool capacity",
            "s",
            "Mean time a connection is held per checkout; pool max / hold time is the "
            "checkouts per second the pool can serve (right).",
            {
                "hold per checkout": r.POOL_HOLD,
                "capacity": f"max by (job) (brink_db_pool_max)\n/ on (job) {r.POOL_HOLD}",
            },
            w=8,
            overrides=[right_axis("capacity", "ops")],
        ),
        timeseries(
            "Postgres backends, by state",
            "short",
            "Connections to brink's database: active, idle, idle in transaction (a "
            "transaction open, its row locks held, waiting for the client).",
            {"{{state}}": f"sum by (state) (pg_stat_activity_count{{{r.DATABASE}}})"},
            w=8,
            stack=True,
        ),
        timeseries(
            "Postgres locks",
            "short",
            "Locks held in brink's database by mode; lock requests not granted and backends "
            "blocked by another, server-wide (hot rows under SELECT … FOR UPDATE).",
            {
                "{{mode}}": f"sum by (mode) (pg_locks_count{{{r.DATABASE}}})",
                "lock waits": "sum(brink_pg_lock_waits)",
                "blocked backends": "sum(brink_pg_blocked_backends)",
            },
            w=8,
            overrides=[dashed("lock waits", "orange"), dashed("blocked backends")],
        ),
        timeseries(
            "Transactions",
            "ops",
            "Transactions per second in brink's database. Rollbacks: orders refused inside "
            "their transaction (unknown item, out of stock, a lost idempotency race) or cut "
            "short; deadlocks should stay at 0.",
            {
                "commits": f"{r.XACT_COMMIT}{{{r.DATABASE}}}",
                "rollbacks": f"{r.XACT_ROLLBACK}{{{r.DATABASE}}}",
                "deadlocks": f"{r.DEADLOCKS}{{{r.DATABASE}}}",
            },
            w=24,
            h=7,
        ),
    ]


def _external() -> list[Json]:
    return [
        row("External API"),
        timeseries(
            "Calls by outcome",
            "reqps",
            "Calls to the slow API per second: ok, timeout, pool_timeout (no client "
            "connection free), http_error, cancelled…",
            {"{{outcome}}": r.EXTERNAL_BY_OUTCOME},
            w=8,
            stack=True,
        ),
        timeseries(
            "Call latency",
            "s",
            "Our client's view (waiting for a connection included) vs the slow API's own: "
            "the gap is time queued in our process (log scale).",
            r.quantiles(r.EXTERNAL_LATENCY, "client ")
            | r.quantiles(r.SLOW_API_LATENCY, "slow API ", ("0.95",)),
            w=8,
            log=True,
        ),
        timeseries(
            "Calls in flight vs limits",
            "short",
            "Past the client's connection limit calls queue in our process; past the slow "
            "API's capacity every quote slows down.",
            {
                "client in flight": r.EXTERNAL_IN_FLIGHT,
                "client connections max": "max(brink_external_connections_max)",
                "slow API serving": r.SLOW_API_IN_FLIGHT,
                "slow API capacity": 'max(brink_slow_api_knob{knob="capacity"})',
            },
            w=8,
            overrides=[dashed("client connections max", "orange"), dashed("slow API capacity")],
        ),
        timeseries(
            "Slow API answers, by status",
            "reqps",
            "Quotes the slow API answered per second (its 503s are injected errors).",
            {"{{status}}": r.SLOW_API_BY_STATUS},
            w=8,
            stack=True,
        ),
        timeseries(
            "Failed calls",
            "percentunit",
            "Share of calls that failed: the slow API's fault or our client's limits "
            "(cancellations by our own callers excluded).",
            {"failed": r.EXTERNAL_FAILED},
            w=8,
            max_value=1,
        ),
        stat(
            "Slow API knobs",
            "short",
            "The latency model's knobs now (seconds, requests or a fraction); change them "
            "live through the slow API's /control.",
            {"{{knob}}": "brink_slow_api_knob"},
            w=8,
            h=8,
        ),
    ]


def _cpu() -> list[Json]:
    return [
        row("CPU and event loop"),
        timeseries(
            "CPU, in cores",
            "percentunit",
            "100% is one core: the demo service's single worker can use no more.",
            {
                "{{job}}": f"{r.CPU}{{{_SERVICES}}}",
                "request work (demo service)": f"sum({r.CPU_WORK})",
            },
            w=8,
        ),
        timeseries(
            "CPU work on the event loop, by route",
            "percentunit",
            "Seconds per second of request work that blocks the loop (/cpu).",
            {"{{route}}": r.CPU_WORK},
            w=8,
            stack=True,
        ),
        timeseries(
            "Event loop lag",
            "s",
            "How late the loop woke a 0.1 s timer: every request on the worker waits this "
            "long too (log scale).",
            r.quantiles(r.LOOP_LAG, which=("0.99",))
            | {"mean": r.mean_of("brink_event_loop_lag_seconds")},
            w=8,
            log=True,
        ),
        timeseries(
            "Memory (resident)",
            "bytes",
            "Resident memory of the two Python processes: requests in flight cost memory.",
            {"{{job}}": f"process_resident_memory_bytes{{{_SERVICES}}}"},
            w=24,
            h=6,
        ),
    ]


def pressure_points() -> Json:
    panels = [
        stat(
            "Scrape targets up",
            "short",
            "1: Prometheus reads the target. A blocked event loop misses its scrapes.",
            {"{{job}}": "up"},
            w=16,
            colors=_UP,
        ),
        stat(
            "Postgres up",
            "short",
            "1: the Postgres metrics collector reaches the server.",
            {"postgres": "max(pg_up)"},
            w=8,
            colors=_UP,
        ),
        *_db(),
        *_external(),
        *_cpu(),
    ]
    return dashboard(
        "brink-pressure-points",
        "Pressure points",
        "Which resource saturates first: the DB pool and row locks, the slow API, the CPU.",
        panels,
        [r.STAGES, r.KNEE, r.LESSONS],
    )
