"""``brink ramp``: stack, probe, ramp, verdict, reports — the lab's main job, end to end.

1. Start a private native stack (unless given a target, which must be on this machine), or
   attach to a running one (``--stack``, :mod:`loadtests.attach`): its knobs set live for the
   run and put back after it, its Prometheus told about the load generator.
2. Probe each route at low load and predict the saturation throughput (capacity model).
3. Run the profile through Locust, gathering per-stage samples (:mod:`loadtests.runner`),
   while a fault schedule (``--fault``, :mod:`loadtests.faults`) changes knobs or stops,
   restarts and kills processes on time.
4. Check the order ledger against the database (:mod:`loadtests.ledger`), when brink knows
   the database: the native stack's own, or ``RampJob.database_dsn`` with a target.
5. Find the tipping point, compare it with the prediction, check the thresholds.
6. Write the reports and return the exit code.
"""

from __future__ import annotations

import math
import os
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field, replace
from pathlib import Path

import asyncpg

from loadtests.attach.options import StackChoice
from loadtests.attach.running_stack import AttachError
from loadtests.attach.session import SHARED_LEDGER_NOTE, Attached, attached
from loadtests.capacity import Prediction, predict
from loadtests.exit_codes import ExitCode
from loadtests.faults.injector import CompositeInjector, KnobInjector, ProcessFaults
from loadtests.faults.native import NativeProcessFaults
from loadtests.faults.runner import AppliedFault, FaultRunner
from loadtests.faults.spec import FaultSchedule
from loadtests.ledger import LedgerVerdict, check_database
from loadtests.mix import Mix, parse_weights
from loadtests.native.process import free_port
from loadtests.native.stack import ADMIN_TOKEN_ENV, NativeStack, StackConfig, StackError
from loadtests.outcome import RampOutcome
from loadtests.probe import ProbeFailed, ProbeResult, probe
from loadtests.profiles import rates_around
from loadtests.report import write_reports
from loadtests.runner import RampConfig, RampRun, run_ramp
from loadtests.summary import summarize
from loadtests.thresholds import Threshold, evaluate
from loadtests.tipping import TippingPoint, find_tipping_point

Say = Callable[[str], None]


def _say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


@dataclass(frozen=True)
class RampJob:
    config: RampConfig
    run_dir: Path
    target: str | None = None
    """A running service's base URL (already checked to be loopback); None starts the stack."""
    slow_api: str | None = None
    settings: Mapping[str, str] = field(default_factory=dict)
    """Extra ``BRINK_*`` settings for the stack brink starts."""
    thresholds: Sequence[Threshold] = ()
    probe: bool = True
    loop_share: float | None = None
    """The capacity model's usable share of the service's core; None: the probe measures it
    (:func:`loadtests.probe.probe`)."""
    database_dsn: str | None = None
    """The target's Postgres, to check the order ledger against; None with a target: no check.
    The native stack's own database is always checked. Any order written there during the run
    by someone other than this run's generator counts as unexpected."""
    faults: FaultSchedule | None = None
    """Faults to apply during the load, timed from the load generator's start. With a target
    only knob faults work (``BRINK_ADMIN_TOKEN`` must be the target's token)."""
    rates_from_prediction: bool = False
    """The user gave no rates: after the probe, the profile's average and peak bracket the
    predicted saturation (:func:`loadtests.profiles.rates_around`); without a prediction the
    config's own rates stay."""
    durable_postgres: bool = True
    """The native stack's Postgres acknowledges a commit after its WAL flush; False
    (``--non-durable-postgres``) is faster and may lose acknowledged orders in a crash."""
    stack: StackChoice | None = None
    """Drive this running stack (``--stack``) instead of starting one; ``settings`` are then
    set live and put back after the run."""


@dataclass(frozen=True)
class _Started:
    service: str
    slow_api: str | None
    dsn: str | None
    native: NativeStack | None = None
    attached: Attached | None = None


class FaultsRefused(ValueError):
    """The schedule asks for faults this run cannot apply."""


CRASHES_POSTGRES = ("kill", "kill_backend")
"""Postgres faults after which only a durable server still has every acknowledged commit."""


def _refuse_crash_without_durability(job: RampJob) -> None:
    """A crash fault on a non-durable Postgres loses acknowledged orders by design."""
    if job.durable_postgres or job.faults is None or job.target or job.stack:
        return
    for step in job.faults.steps:
        if step.action.target == "postgres" and step.action.name in CRASHES_POSTGRES:
            raise FaultsRefused(
                f"{step.action} on a non-durable Postgres loses acknowledged orders by design:"
                " drop --non-durable-postgres"
            )


def _start_stack(job: RampJob, stack: ExitStack, say: Say) -> _Started:
    if job.stack is not None:
        running = stack.enter_context(attached(job.stack, job.settings, say, job.faults))
        urls = running.stack.urls
        return _Started(urls["service"], urls["slow_api"], urls.get("postgres"), None, running)
    if job.target is not None:
        return _Started(job.target, job.slow_api, job.database_dsn)
    native = NativeStack(
        StackConfig(
            service_port=free_port(),
            slow_api_port=free_port(),
            pg_port=free_port(),
            extra_env=dict(job.settings),
            run_dir=job.run_dir / "stack",
            write_token_file=False,  # the run folder is a report: no secret in it
            durable_postgres=job.durable_postgres,
        )
    )
    say("starting the native stack (Postgres, slow API, demo service)")
    native.start()
    stack.callback(native.stop)
    return _Started(native.urls["service"], native.urls["slow_api"], native.postgres.dsn, native)


def _fault_runner(
    job: RampJob, started: _Started, stack: ExitStack, say: Say
) -> FaultRunner | None:
    """A runner for the job's schedule, or None without one; process faults need the stack."""
    if job.faults is None:
        return None
    token = started.native.admin_token if started.native else os.environ.get(ADMIN_TOKEN_ENV)
    if started.attached is not None:
        token = started.attached.token
    knob_faults = any(not step.action.is_process for step in job.faults.steps)
    if knob_faults and (token is None or started.slow_api is None):
        raise FaultsRefused(f"knob faults need {ADMIN_TOKEN_ENV} and the slow API's URL")
    processes = _process_faults(started)
    if any(step.action.is_process for step in job.faults.steps) and processes is None:
        raise FaultsRefused("process faults need the native stack: drop --target")
    knobs = (
        KnobInjector(started.service, started.slow_api, token)
        if token is not None and started.slow_api is not None
        else None
    )
    injector = stack.enter_context(CompositeInjector(knobs, processes))
    return FaultRunner(job.faults, injector, log=say)


def _process_faults(started: _Started) -> ProcessFaults | None:
    """Process faults on the stack we started, or on the one we attached to; None: neither."""
    if started.native is not None:
        return NativeProcessFaults(started.native)
    return started.attached.process_faults if started.attached is not None else None


def _probe(job: RampJob, service: str, slow_api: str | None, say: Say) -> ProbeResult | None:
    if not job.probe:
        return None
    say("probing each route at low load (capacity model)")
    mix = Mix(parse_weights(job.config.mix))
    slow_api_metrics = None if slow_api is None else slow_api + "/metrics"
    return probe(service, mix, slow_api_metrics, progress=say, loop_share=job.loop_share)


def _rates(job: RampJob, prediction: Prediction | None, say: Say) -> RampConfig:
    """The job's config, with rates bracketing the prediction where the user gave none."""
    config = job.config
    if not job.rates_from_prediction:
        return config
    if prediction is None or not math.isfinite(prediction.saturation_rps):
        rates = f"average {config.average_rps:g}, peak {config.peak_rps:g} req/s"
        say(f"no prediction: the default rates ({rates}) may not reach the knee; set --peak-rps")
        return config
    average, peak = rates_around(prediction.saturation_rps, config.rps_cap)
    say(f"rates from the prediction: average {average:g}, peak {peak:g} req/s "
        "(--average-rps/--peak-rps to choose)")  # fmt: skip
    return replace(config, average_rps=average, peak_rps=peak)


def _check_ledger(
    run_dir: Path, dsn: str | None, since: float, say: Say, shared: bool = False
) -> LedgerVerdict | None:
    if dsn is None:
        say("ledger: not checked (a target without a database DSN)")
        return None
    if shared:
        say(f"ledger: {SHARED_LEDGER_NOTE}")
    try:
        verdict = check_database(run_dir, dsn, [(since, math.inf)], shared)
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        say(f"ledger: not checked, the database did not answer: {exc!r}")
        return None
    say(verdict.explanation)
    return verdict


def _where(job: RampJob, started: _Started) -> dict[str, object]:
    """Which stack the ramp ran on, for the report (never a DSN: it may hold a password)."""
    if started.attached is not None:
        durable = started.attached.stack.durable_postgres
        return {"target": started.attached.label, "durable_postgres": durable}
    durable_postgres = None if job.target else job.durable_postgres
    return {"target": job.target or "native stack", "durable_postgres": durable_postgres}


def _verdict(
    run: RampRun,
    tipping: TippingPoint,
    failed_thresholds: bool,
    config: RampConfig,
    ledger: LedgerVerdict | None = None,
    declared_peak: bool = True,
) -> ExitCode:
    """Run failed (3) > data lost (6) > thresholds breached (1) > collapsed at or below the
    declared peak (4) > ok. Rates derived from the prediction declare no peak: where that run
    collapses is its finding, as in ``breakpoint``.

    A ledger that does not hold (an acknowledged order lost, an order nobody sent, a refused
    order committed, a duplicate, stock that does not add up) has its own code whatever else the
    run showed: a service that lies about writes has no throughput worth reporting, and CI must
    not mistake it for flaky infrastructure (3).
    """
    if not run.stages or (run.aborted or "").startswith("watchdog"):
        return ExitCode.RUN_FAILED
    if ledger is not None and not ledger.ok:
        return ExitCode.DATA_LOST
    if failed_thresholds:
        return ExitCode.THRESHOLDS_BREACHED
    collapsed = next((s for s in run.stages if s.index == tipping.collapse_index), None)
    # Collapsing past the peak is what a ramp is for; collapsing at or below it is a failure.
    # (Finding the collapse is the breakpoint profile's whole job.)
    at_or_below_peak = collapsed is not None and collapsed.target_rps <= config.peak_rps
    if at_or_below_peak and declared_peak and config.profile != "breakpoint":
        return ExitCode.ABORTED_ON_COLLAPSE
    return ExitCode.OK


def run_job(job: RampJob, say: Say = _say) -> tuple[RampOutcome | None, ExitCode]:
    """Do the whole ramp; returns the outcome (None if nothing ran) and the exit code."""
    started = time.time()
    config = job.config
    with ExitStack() as stack:
        try:
            _refuse_crash_without_durability(job)
            started_stack = _start_stack(job, stack, say)
            runner = _fault_runner(job, started_stack, stack, say)
            result = _probe(job, started_stack.service, started_stack.slow_api, say)
        except (StackError, ProbeFailed, FaultsRefused, AttachError) as exc:
            say(f"brink ramp: {exc}")
            return None, ExitCode.RUN_FAILED
        prediction: Prediction | None = None
        if result is not None:
            prediction = predict(result.demands, result.capacities)
            say(f"predicted saturation {prediction.saturation_rps:.0f} req/s; "
                f"{prediction.explanation}")  # fmt: skip
        config = _rates(job, prediction, say)
        say(f"ramp: profile {config.profile}, about {config.expected_duration_s():.0f} s")
        load_started = time.time()
        faults: list[AppliedFault] = []
        if runner is not None:
            runner.start()
        try:
            expose = started_stack.attached.expose if started_stack.attached else None
            run = run_ramp(config, started_stack.service, job.run_dir, say, expose=expose)
        finally:
            if runner is not None:
                runner.stop()  # undoes what is still applied, before the ledger is read
                faults = runner.applied
        shared = started_stack.attached is not None
        ledger = _check_ledger(job.run_dir, started_stack.dsn, load_started, say, shared)
    if not run.stages:
        say(f"brink ramp: the load generator produced no stage; see {job.run_dir / 'locust.log'}")
        return None, ExitCode.RUN_FAILED
    tipping = find_tipping_point(run.stages, config.slo_s)
    summary = summarize(run.stages, config.slo_s, config.average_rps, config.peak_rps, prediction)
    results = tuple(evaluate(job.thresholds, summary))
    breached = any(not r.passed for r in results)
    code = _verdict(run, tipping, breached, config, ledger, declared_peak=config is job.config)
    outcome = RampOutcome(
        config={
            **config.to_dict(),
            "rates_from_prediction": config is not job.config,
            **_where(job, started_stack),
            "settings": dict(job.settings),
        },
        stages=tuple(run.stages),
        tipping=tipping,
        summary=summary,
        thresholds=results,
        exit_code=code,
        started_at=started,
        finished_at=time.time(),
        prediction=prediction,
        probe=result,
        aborted=run.aborted,
        ledger=ledger,
        faults=tuple(faults),
    )
    paths = write_reports(outcome, job.run_dir)
    say(tipping.explanation)
    for threshold in results:
        say(("ok    " if threshold.passed else "FAIL  ") + threshold.message)
    say(f"verdict: {code.name} (exit {int(code)}); reports: {paths.get('html', job.run_dir)}")
    return outcome, code
