"""Resilience: how brink fails, and what each mechanism does about it.

First the preset in force and the failure as users see it (answers by status, errors by kind,
the queue; a mark at every preset switch), then one row
per mechanism, each plotted from the recording rules of group ``brink-resilience`` over the
metrics ``ResilienceMetrics`` declares: retries and their amplification (the service's and the
load generator's own), load shedding at admission, the circuit breaker and the bulkhead on the
external API, and deadlines.
"""

from __future__ import annotations

from . import common as r
from .kit import Json, dashboard, dashed, row, stat, states, text, timeseries

HOW_TO_READ = """\
**Fragile** code queues without limit and retries at once; **resilient** code bounds every wait.
Switch live with `PUT /admin/resilience` (`{"preset": "resilient"}`, or one knob such as
`{"shedding": {"limit": 10}}`) and watch the rows below:

- **Retries**: *amplification* is attempts per call. Naive retries of a failing dependency
  multiply its load (1.9x when half the calls fail); budgeted ones stay near 1.1x. *clients*
  is the load generator's own (`--client-retries`): a client can be the storm too.
- **Load shedding**: past the admission limit a request gets a fast 503 (`Retry-After`)
  instead of a place in a queue that makes everyone late.
- **Circuit breaker**: after enough failures calls to the slow API are refused at once for a
  cooldown, then one probe decides. **Bulkhead**: at most *limit* calls to it at a time, so a
  slow dependency cannot hold every request. **Deadlines**: waits cut short, by stage.
"""


def _failure() -> list[Json]:
    return [
        text("How to read", HOW_TO_READ, w=8, h=12),
        stat(
            "Preset in force",
            "none",
            "The resilience preset the service runs now (overrides may apply on top: "
            "GET /admin/resilience). Purple marks on the graphs: a switch.",
            {"{{preset}}": f"max by (preset) ({r.PRESET} == 1)"},
            w=4,
            h=12,
            show_name=True,
        ),
        timeseries(
            "Service answers, by status",
            "reqps",
            "Workload answers per second. A fast 503 (shed, breaker open, pool acquire "
            "deadline) costs less than a slow timeout.",
            {"{{status}}": f"sum by (status) ({r.ANSWERS}{{{r.WORKLOAD}}})"},
            w=12,
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


def _retries() -> list[Json]:
    return [
        row("Retries"),
        timeseries(
            "Retry amplification",
            "short",
            "Attempts per call reaching each dependency (external: the slow API; db: the order "
            "transaction), and requests per arrival the load generator sends. 1: no retries. "
            "BrinkRetryStorm fires above 1.5.",
            {"{{target}}": r.AMPLIFICATION, "clients": r.CLIENT_AMPLIFICATION},
            w=8,
        ),
        timeseries(
            "Calls and attempts",
            "reqps",
            "Calls the code made (before retries) against the attempts that reached the "
            "dependency: the gap is retries.",
            {"{{target}} calls": r.CALLS, "{{target}} attempts": r.ATTEMPTS},
            w=8,
        ),
        timeseries(
            "Retries and the budget",
            "reqps",
            "Retries per second by target and policy, retries the budget refused, and the "
            "load generator's own retries.",
            {
                "{{target}} {{policy}}": r.RETRIES,
                "{{target}} refused by the budget": r.BUDGET_EXHAUSTED,
                "clients": r.CLIENT_RETRIES,
            },
            w=8,
        ),
    ]


def _shedding() -> list[Json]:
    return [
        row("Load shedding"),
        timeseries(
            "Shed, by reason",
            "reqps",
            "Requests refused at admission per second: in_flight_limit (no free slot) or "
            "queue_time_limit (waited too long for one).",
            {"{{reason}}": r.SHED_BY_REASON},
            w=8,
            stack=True,
        ),
        timeseries(
            "Shed share",
            "percentunit",
            "Share of the workload refused at admission. BrinkShedding fires above 5%.",
            {"shed": r.SHED_SHARE},
            w=8,
            max_value=1,
        ),
        timeseries(
            "Admission: in flight vs limit",
            "short",
            "Highest admitted in-flight count over 10 s against the admission limit (static, "
            "or adaptive as it learns; 0 while shedding is off). Requests are shed when the "
            "line touches the limit.",
            {
                "admitted in flight (peak)": r.ADMITTED_PEAK,
                "limit": "max by (job) (brink_admission_limit)",
            },
            w=8,
            overrides=[dashed("limit")],
        ),
    ]


def _breaker_and_bulkhead() -> list[Json]:
    return [
        row("Circuit breaker, bulkhead, deadlines"),
        timeseries(
            "Breaker state",
            "none",
            "The worst state of the last 10 s: closed, half-open (a probe is out) or open "
            "(calls refused for the cooldown). BrinkBreakerOpen fires when it stays open.",
            {"{{target}}": r.BREAKER_STATE},
            w=8,
            max_value=2,
            mappings=states(("closed", "green"), ("half-open", "yellow"), ("open", "red")),
        ),
        timeseries(
            "Breaker transitions",
            "ops",
            "State changes per second, by the state entered: open, half_open, closed. An "
            "open/half_open pair every cooldown: the probes keep failing.",
            {"to {{to}}": r.BREAKER_TRANSITIONS},
            w=8,
        ),
        timeseries(
            "Refused at once",
            "reqps",
            "Calls refused without trying: by the open breaker, or by a full bulkhead.",
            {
                "breaker ({{target}})": r.BREAKER_REJECTED,
                "bulkhead ({{name}})": r.BULKHEAD_REJECTED,
            },
            w=8,
        ),
        timeseries(
            "External API bulkhead",
            "short",
            "Highest number of calls inside the external API's bulkhead over 10 s, against "
            "its limit (0 while the bulkhead is off).",
            {
                "in use (peak)": f'{r.BULKHEAD_PEAK}{{name="external"}}',
                "limit": 'max by (job) (brink_bulkhead_limit{name="external"})',
            },
            w=12,
            overrides=[dashed("limit")],
        ),
        timeseries(
            "Deadlines exceeded, by stage",
            "ops",
            "Work cut short by a deadline per second: db_acquire (waiting for a pool "
            "connection), db_statement (Postgres statement_timeout), external (one attempt "
            "at the slow API).",
            {"{{stage}}": r.DEADLINES},
            w=12,
        ),
    ]


def resilience() -> Json:
    return dashboard(
        "brink-resilience",
        "Resilience",
        "How brink fails, and what retries, shedding, the breaker, the bulkhead and deadlines "
        "do about it.",
        [*_failure(), *_retries(), *_shedding(), *_breaker_and_bulkhead()],
        [r.STAGES, r.KNEE, r.LESSONS, r.PRESET_SWITCHES],
    )
