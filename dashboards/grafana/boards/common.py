"""What the dashboards share: the recording rules they plot, the stage, knee and lesson
annotations.

Rule names are those of dashboards/prometheus/rules/brink-recording.yml (`level:metric:operation`,
each over its own [10s] window); tests/unit/test_dashboards.py checks every name used exists.
"""

from __future__ import annotations

from collections.abc import Sequence

from .kit import annotation

# The load generator (job "locust").
OFFERED = "job:brink_loadgen_arrivals:rate10s"
ACHIEVED = "job:brink_loadgen_completed:rate10s"
GOODPUT = "job:brink_loadgen_good:rate10s"
DROPPED = "job:brink_loadgen_dropped:rate10s"
CLIENT_ERRORS = "job:brink_loadgen_errors:rate10s"
CLIENT_ERRORS_BY_KIND = "job_kind:brink_loadgen_errors:rate10s"
GOOD_RATIO = "job:brink_loadgen_good_per_arrivals:ratio_rate10s"
CLIENT_LATENCY = "job_quantile:brink_loadgen_latency_seconds:histogram_quantile"
# Objectives (constants).
GOOD_OBJECTIVE = "slo:brink_goodput_ratio:objective"
P95_OBJECTIVE = "slo:brink_latency_seconds:p95_objective"
# The demo service.
SERVED = "job:brink_http_requests:rate10s"
ANSWERS = "job_route_status:brink_http_requests:rate10s"
ERROR_SHARE = "job:brink_http_request_errors_per_requests:ratio_rate10s"
IN_FLIGHT_SEEN = "job:brink_http_requests_in_flight:avg_over_time10s"
IN_FLIGHT_LITTLE = "job:brink_http_requests_in_flight:mean10s"
LITTLE_RATIO = "job:brink_http_requests_in_flight:littles_law_ratio10s"
# Its DB pool.
POOL_USE = "job:brink_db_pool_utilisation:ratio_rate10s"
POOL_BY_ROUTE = "job_route:brink_db_connection_busy_seconds:rate10s"
POOL_WAITERS = "job:brink_db_pool_waiters:mean10s"
POOL_WAIT = "job_quantile:brink_db_pool_acquire_wait_seconds:histogram_quantile"
POOL_TIMEOUTS = "job:brink_db_pool_acquire_timeouts:rate10s"
POOL_HOLD = "job:brink_db_connection_hold_seconds:mean10s"
# Its client of the slow API, and the slow API itself.
EXTERNAL_BY_OUTCOME = "job_outcome:brink_external_requests:rate10s"
EXTERNAL_FAILED = "job:brink_external_request_failures_per_requests:ratio_rate10s"
EXTERNAL_LATENCY = "job_quantile:brink_external_request_duration_seconds:histogram_quantile"
EXTERNAL_IN_FLIGHT = "job:brink_external_requests_in_flight:mean10s"
SLOW_API_BY_STATUS = "job_status:brink_slow_api_requests:rate10s"
SLOW_API_LATENCY = "job_quantile:brink_slow_api_request_duration_seconds:histogram_quantile"
SLOW_API_IN_FLIGHT = "job:brink_slow_api_requests_in_flight:mean10s"
# CPU and the event loop.
CPU = "job:process_cpu_seconds:rate10s"
CPU_WORK = "job_route:brink_cpu_work_seconds:rate10s"
LOOP_LAG = "job_quantile:brink_event_loop_lag_seconds:histogram_quantile"
# Resilience: retries (the service's and the generator's), shedding, breaker, bulkhead, deadlines.
CALLS = "job_target:brink_dependency_calls:rate10s"
ATTEMPTS = "job_target:brink_dependency_attempts:rate10s"
AMPLIFICATION = "job_target:brink_dependency_attempts_per_calls:ratio_rate10s"
RETRIES = "job_target_policy:brink_retries:rate10s"
BUDGET_EXHAUSTED = "job_target:brink_retry_budget_exhausted:rate10s"
CLIENT_RETRIES = "job:brink_loadgen_retries:rate10s"
CLIENT_AMPLIFICATION = "job:brink_loadgen_attempts_per_arrivals:ratio_rate10s"
SHED_BY_REASON = "job_reason:brink_shed:rate10s"
SHED_SHARE = "job:brink_shed_per_requests:ratio_rate10s"
ADMITTED_PEAK = "job:brink_admission_in_flight:max_over_time10s"
BREAKER_STATE = "job_target:brink_breaker_state:max_over_time10s"
BREAKER_TRANSITIONS = "job_target_to:brink_breaker_transitions:rate10s"
BREAKER_REJECTED = "job_target:brink_breaker_rejected:rate10s"
BULKHEAD_PEAK = "job_name:brink_bulkhead_in_flight:max_over_time10s"
BULKHEAD_REJECTED = "job_name:brink_bulkhead_rejected:rate10s"
DEADLINES = "job_stage:brink_deadline_exceeded:rate10s"
# Postgres.
XACT_COMMIT = "job_datname:pg_stat_database_xact_commit:rate10s"
XACT_ROLLBACK = "job_datname:pg_stat_database_xact_rollback:rate10s"
DEADLOCKS = "job_datname:pg_stat_database_deadlocks:rate10s"

# brink's database, in Compose and natively (the others are Postgres' own and the exporter's).
DATABASE = 'datname="brink"'
# The workload's routes, as the rules select them (scrapes and probes are not the load).
WORKLOAD = 'route!~"/metrics|/healthz|/readyz"'


def quantiles(
    rule: str, prefix: str = "", which: Sequence[str] = ("0.5", "0.95", "0.99")
) -> dict[str, str]:
    """``{"p95": 'rule{quantile="0.95"}', ...}`` for a histogram_quantile rule."""
    return {f"{prefix}p{float(q) * 100:g}": f'{rule}{{quantile="{q}"}}' for q in which}


def mean_of(histogram: str) -> str:
    """Mean of a histogram over the panel's window (no rule records it)."""
    return (
        f"sum(rate({histogram}_sum[$__rate_interval]))\n"
        f"/ sum(rate({histogram}_count[$__rate_interval]))"
    )


# Past the knee as `brink ramp` defines it (loadtests/tipping.py): goodput under 95% of the
# offered load, or the users' p95 over the SLO. 1 while past it, 0 below it.
PAST_THE_KNEE = (
    "max by (job) (\n"
    f"  ({GOOD_RATIO} < bool on () group_left () {GOOD_OBJECTIVE})\n"
    "  or\n"
    f'  ({CLIENT_LATENCY}{{quantile="0.95"}} > bool on () group_left () {P95_OBJECTIVE})\n'
    ")"
)

STAGES = annotation(
    "Locust stages",
    "(changes(brink_loadgen_stage_index[$__rate_interval]) > 0)\n"
    "* on (job, instance) group_left (stage) brink_loadgen_stage",
    "blue",
    "stage: {{stage}}",
)
KNEE = annotation("Past the knee", PAST_THE_KNEE, "red", "past the knee")
# Which lesson is running: every generator exports brink_loadgen_run_info{scenario, phase}
# (`brink ramp`: scenario "ramp", phase its profile; empty for a run from the web UI). Marked
# while it sends load, titled with the scenario and phase, so each phase of `brink scenario`
# stands out on every graph.
RUN_INFO = (
    'label_replace(label_replace(brink_loadgen_run_info, "scenario", "own run", "scenario", ""),'
    ' "phase", "-", "phase", "")'
    " * on (job, instance) group_left () (brink_loadgen_target_rps > 0)"
)
LESSONS = annotation("Lesson phases", RUN_INFO, "orange", "{{scenario}}: {{phase}}")
# The preset switched (PUT /admin/resilience): marks the preset now in force. The gauge is 1 for
# the preset in force, 0 for the others; only the one that changed to 1 is kept.
PRESET = "brink_resilience_preset"
PRESET_SWITCHES = annotation(
    "Resilience preset",
    f"(changes({PRESET}[$__rate_interval]) > 0) * {PRESET} > 0",
    "purple",
    "preset: {{preset}}",
)
