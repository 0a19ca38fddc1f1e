"""``brink scenario NAME``, end to end: stack, scenario, reports, exit code.

1. Start a private native stack with what the scenario needs (its settings, then the
   operator's), or attach to a running one (``--stack``) and set those settings live there
   (:mod:`loadtests.attach`): put back as found when the run ends, however it ends.
2. Build the :class:`~loadtests.scenarios.context.ScenarioContext` and run the scenario.
3. Write the reports (:mod:`loadtests.scenarios.report`) and stop the stack.
4. Exit 0 when the lesson showed, 1 when it did not, 3 when the run itself failed.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Mapping
from contextlib import ExitStack
from dataclasses import replace
from pathlib import Path

import asyncpg
import httpx2

from loadtests.attach.running_stack import AttachError
from loadtests.attach.session import SHARED_LEDGER_NOTE, attached
from loadtests.exit_codes import ExitCode
from loadtests.ledger import check_database
from loadtests.native.process import free_port
from loadtests.native.stack import NativeStack, StackConfig, StackError
from loadtests.probe import ProbeFailed
from loadtests.scenarios.base import (
    Scenario,
    ScenarioError,
    ScenarioOptions,
    ScenarioResult,
    StackNeeds,
)
from loadtests.scenarios.context import Say, ScenarioContext
from loadtests.scenarios.registry import load
from loadtests.scenarios.report import write_reports


def _say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def stack_settings(needs: StackNeeds, options: ScenarioOptions) -> dict[str, str]:
    """The scenario's own settings, overridden by the operator's ``--set``."""
    return {**needs.settings, **options.settings}


def stack_config(needs: StackNeeds, options: ScenarioOptions, run_dir: Path) -> StackConfig:
    """Free ports on loopback, the merged settings, logs under ``run_dir/stack``."""
    return StackConfig(
        service_port=free_port(),
        slow_api_port=free_port(),
        pg_port=free_port(),
        extra_env=stack_settings(needs, options),
        run_dir=run_dir / "stack",
        pg_exporter_port=free_port() if needs.pg_exporter else None,
        write_token_file=False,  # the run folder is a report: no secret in it
        durable_postgres=options.durable_postgres,
    )


def run_failure(result: ScenarioResult) -> str | None:
    """Why the run itself failed (no verdict on the service), or None."""
    if not result.phases:
        return "the scenario ran no phase"
    for phase in result.phases:
        if not phase.stages:
            return f"phase {phase.name}: the load generator produced no stage"
        if (phase.aborted or "").startswith("watchdog"):
            return f"phase {phase.name}: {phase.aborted}"
    return None


def exit_code(result: ScenarioResult) -> ExitCode:
    """3 when the run failed, 6 when an order was lost (whatever the lesson showed), else 0
    when the verdict passed and 1 when the lesson did not show."""
    if run_failure(result) is not None:
        return ExitCode.RUN_FAILED
    if result.ledger is not None and not result.ledger.ok:
        return ExitCode.DATA_LOST
    return ExitCode.OK if result.verdict.passed else ExitCode.THRESHOLDS_BREACHED


def check_ledger(
    result: ScenarioResult, run_dir: Path, dsn: str | None, say: Say, shared: bool = False
) -> ScenarioResult:
    """``result`` with the ledger of every phase checked against the database.

    Only rows created while a phase ran must have been sent by it: a capacity probe between
    phases writes orders of its own. On a ``shared`` stack no row is held against the run.
    """
    if dsn is None:
        say("ledger: not checked (the stack's database is not known)")
        return result
    if shared:
        say(f"ledger: {SHARED_LEDGER_NOTE}")
    folders = [run_dir / phase.name for phase in result.phases]
    windows = [(phase.started_at, phase.ended_at) for phase in result.phases]
    try:
        ledger = check_database(folders, dsn, windows, shared)
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        say(f"ledger: not checked, the database did not answer: {exc!r}")
        return result
    say(ledger.explanation)
    return replace(result, ledger=ledger)


def open_stack(
    scenario: Scenario, options: ScenarioOptions, run_dir: Path, say: Say, cleanup: ExitStack
) -> tuple[ScenarioContext, str | None]:
    """The context the scenario runs in, and the stack's database DSN: a private stack
    started with the scenario's settings, or the running stack ``options.stack`` with them
    set live (``cleanup`` stops the one, puts the other back as found)."""
    labels = {"scenario": scenario.name}
    if options.stack is not None:
        settings = stack_settings(scenario.needs, options)
        running = cleanup.enter_context(attached(options.stack, settings, say))
        durable = running.stack.durable_postgres is not False  # the stack's, for the report
        options = replace(options, durable_postgres=durable)
        ctx = ScenarioContext(run_dir, options, attached=running, run_labels=labels, say=say)
        return ctx, running.stack.urls.get("postgres")
    stack = NativeStack(stack_config(scenario.needs, options, run_dir))
    say("starting the native stack (Postgres, slow API, demo service)")
    stack.start()
    cleanup.callback(stack.stop)
    ctx = ScenarioContext(run_dir, options, stack=stack, run_labels=labels, say=say)
    return ctx, stack.postgres.dsn


def run_scenario(
    name: str,
    options: ScenarioOptions,
    run_dir: Path,
    say: Say = _say,
    scenario: Scenario | None = None,
) -> tuple[ScenarioResult | None, ExitCode]:
    """Run the scenario ``name`` on a fresh native stack (or ``options.stack``); returns its
    result and exit code."""
    scenario = scenario or load(name)
    run_dir.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    with ExitStack() as cleanup:
        try:
            say(f"scenario {scenario.name}: {scenario.description}")
            ctx, dsn = open_stack(scenario, options, run_dir, say, cleanup)
            shared = options.stack is not None
            result = check_ledger(scenario.run(ctx), run_dir, dsn, say, shared)
        except (
            AttachError,
            StackError,
            ProbeFailed,
            ScenarioError,
            httpx2.HTTPError,
            OSError,
            ValueError,
        ) as exc:
            say(f"brink scenario: {exc}; logs in {run_dir}")
            return None, ExitCode.RUN_FAILED
    code = exit_code(result)
    settings: Mapping[str, str] = stack_settings(scenario.needs, options)
    paths = write_reports(result, run_dir, ctx.options, settings, int(code))
    failure = run_failure(result)
    if failure is not None:
        say(f"brink scenario: run failed: {failure}")
    verdict = result.verdict
    say(f"verdict: {verdict.label.upper()} — {verdict.headline}")
    for key, value in verdict.figures.items():
        say(f"  {key} = {value:.4g}")
    say(
        f"{code.name} (exit {int(code)}) after {time.monotonic() - started:.0f} s; "
        f"reports: {paths.get('html', run_dir)}"
    )
    return result, code
