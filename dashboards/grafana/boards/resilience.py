"""Resilience: how brink fails today. Shedding, breaker and retry panels come with their metrics.

Only metrics that something exports today are queried: the resilience mechanisms' metrics are
declared, but their panels come when the mechanisms run in the service and their rules exist.
"""

from __future__ import annotations

from . import common as r
from .kit import Json, dashboard, text, timeseries

TO_COME = """\
The resilience mechanisms are being built; their panels come once they are wired into the
service and their recording rules exist (`demo_service/metrics.py`, `ResilienceMetrics`):

- **Load shedding**: requests refused at admission (`brink_shed_total`) and the admission
  limit vs in flight (`brink_admission_limit`, `brink_admission_in_flight`).
- **Circuit breaker**: its state, closed, half-open or open (`brink_breaker_state`), and the
  calls it refuses (`brink_breaker_rejected_total`).
- **Retries**: attempts per call, the *retry amplification*
  (`brink_dependency_attempts_total` / `brink_dependency_calls_total`), and retries refused
  by the budget.
- **Bulkheads and deadlines**: calls refused by a full bulkhead, work cut short by a deadline.

Until then this dashboard shows how brink fails *today*: what the users get instead of an
answer, how fast the service says no, and whether the queue drains once the load drops.
"""


def resilience() -> Json:
    panels = [
        text("What will come here", TO_COME, w=8, h=12),
        timeseries(
            "Service answers, by status",
            "reqps",
            "Workload answers per second. A fast 503 (pool acquire timeout) costs less than "
            "a slow timeout.",
            {"{{status}}": f"sum by (status) ({r.ANSWERS}{{{r.WORKLOAD}}})"},
            w=16,
            h=12,
            stack=True,
        ),
        timeseries(
            "Client errors, by kind",
            "reqps",
            "What the users get instead of an answer, and arrivals never sent.",
            {"{{kind}}": r.CLIENT_ERRORS_BY_KIND, "dropped (not sent)": r.DROPPED},
            w=8,
            stack=True,
        ),
        timeseries(
            "5xx share",
            "percentunit",
            "Share of the workload's answers that are 5xx, and the pool's acquire timeouts "
            "among them.",
            {
                "service 5xx": r.ERROR_SHARE,
                "pool give-ups": f"{r.POOL_TIMEOUTS}\n/ on (job) ({r.SERVED} > 0)",
            },
            w=8,
            max_value=1,
        ),
        timeseries(
            "Queue building: Little's-law ratio",
            "short",
            "In flight seen / (throughput · latency): about 1 in a steady state, above 1 while "
            "a queue builds, back to 1 once it has drained. Does it recover after the load "
            "drops?",
            {"in flight / (throughput · latency)": r.LITTLE_RATIO},
            w=8,
        ),
    ]
    return dashboard(
        "brink-resilience",
        "Resilience",
        "How brink fails today; shedding, breaker and retry panels come with their metrics.",
        panels,
        [r.STAGES, r.KNEE],
    )
