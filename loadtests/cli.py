"""``brink``: the lab's command line. Each subcommand is an ``_add_<name>`` that registers its
parser and a ``cmd_<name>(args) -> int`` that runs it; :func:`main` only dispatches.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import signal
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any, TypeAlias

from loadtests.arg_types import positive
from loadtests.attach.options import add_stack_options, stack_choice
from loadtests.attach.running_stack import claim, publish, unpublish
from loadtests.capacity import LOOP_SHARE, predict
from loadtests.client_retry import POLICIES
from loadtests.compare import Tolerances, compare, speed_note
from loadtests.exit_codes import ExitCode
from loadtests.faults.spec import FaultSchedule, FaultStep, parse_step
from loadtests.mix import DEFAULT_WEIGHTS, Mix, parse_weights
from loadtests.native import prometheus
from loadtests.native.stack import ADMIN_TOKEN_ENV, NativeStack, StackConfig, StackError
from loadtests.outcome import knee_box_speed, summary_from_report
from loadtests.pacing import ARRIVALS
from loadtests.profiles import (
    DEFAULT_AVERAGE_RPS,
    DEFAULT_PEAK_RPS,
    PREDICTED_AVERAGE_SHARE,
    PREDICTED_PEAK_SHARE,
    PROFILES,
    ProfileParams,
    build_profile,
    rates_around,
)
from loadtests.runner import RampConfig
from loadtests.safety import loopback_only
from loadtests.scenarios.base import ScenarioOptions
from loadtests.thresholds import Threshold, load_thresholds

if TYPE_CHECKING:
    Subparsers: TypeAlias = argparse._SubParsersAction[argparse.ArgumentParser]

Command = Callable[[argparse.Namespace], int]

_SETTING_KEY = re.compile(r"[A-Z][A-Z0-9_]*")
_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
_HEALTH_CHECK_INTERVAL_S = 0.5


def port(text: str) -> int:
    """argparse type: a TCP port number."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if not 1 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"not a TCP port (1-65535): {text!r}")
    return value


def setting(text: str) -> tuple[str, str]:
    """argparse type: ``KEY=VALUE`` → ``("BRINK_KEY", "VALUE")``; the value is never echoed."""
    key, equals, value = text.partition("=")
    key = key.strip().upper()
    if not equals or not _SETTING_KEY.fullmatch(key):
        raise argparse.ArgumentTypeError(
            f"expected KEY=VALUE such as DB__POOL_MAX=10, got key {key!r}"
        )
    return (key if key.startswith("BRINK_") else "BRINK_" + key), value


# --- brink up ----------------------------------------------------------------------------------


def _non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text!r}")
    return value


def _add_workers(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--workers",
        type=_non_negative_int,
        default=0,
        metavar="N",
        help="Locust master with N worker processes (default: one process)",
    )


def _add_settings(parser: argparse.ArgumentParser, help: str) -> None:
    parser.add_argument(
        "--set",
        dest="settings",
        metavar="KEY=VALUE",
        type=setting,
        action="append",
        default=[],
        help=help,
    )


def _add_postgres_durability(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--non-durable-postgres",
        action="store_true",
        help="run the private Postgres with fsync, synchronous_commit and full_page_writes off:"
        " faster commits, but a crash loses acknowledged orders (reports say so)",
    )


def _add_up(subparsers: Subparsers) -> None:
    defaults = StackConfig()
    parser = subparsers.add_parser(
        "up",
        help="run Postgres, the slow API and the demo service here until Ctrl-C",
        description="Start a private Postgres, the slow API and the demo service on this "
        "machine, print their URLs, and stop them all on Ctrl-C or SIGTERM.",
    )
    parser.add_argument("--host", default=defaults.host, help="listen address (%(default)s)")
    for flag, default, what in (
        ("--service-port", defaults.service_port, "demo service"),
        ("--slow-api-port", defaults.slow_api_port, "slow API"),
        ("--pg-port", defaults.pg_port, "private Postgres"),
        ("--locust-port", 8089, "Locust web UI"),
        ("--loadgen-metrics-port", defaults.loadgen_metrics_port, "load generator's /metrics"),
        ("--pg-exporter-port", 9187, "Postgres exporter"),
        ("--prometheus-port", 9090, "Prometheus (if installed)"),
    ):
        parser.add_argument(
            flag,
            type=port,
            default=default,
            metavar="PORT",
            help=f"port of the {what} (%(default)s)",
        )
    parser.add_argument(
        "--run-dir", type=Path, default=defaults.run_dir, help="logs and admin token (%(default)s)"
    )
    _add_settings(parser, "extra BRINK_KEY setting for every process, e.g. --set DB__POOL_MAX=10")
    _add_postgres_durability(parser)
    parser.add_argument("--no-locust", action="store_true", help="do not start Locust's web UI")
    parser.add_argument(
        "--no-probe",
        action="store_true",
        help="skip the capacity probe that sets the web UI's default rates around the predicted"
        " knee (about 15 s at start-up)",
    )
    parser.add_argument(
        "--no-prometheus",
        action="store_true",
        help="do not start Prometheus and the Postgres exporter",
    )
    _add_workers(parser)
    parser.set_defaults(func=cmd_up)


def stack_config(args: argparse.Namespace) -> StackConfig:
    """The :class:`StackConfig` that ``brink up`` arguments describe."""
    return StackConfig(
        host=args.host,
        service_port=args.service_port,
        slow_api_port=args.slow_api_port,
        pg_port=args.pg_port,
        extra_env=dict(args.settings),
        run_dir=args.run_dir.absolute(),
        locust_port=None if args.no_locust else args.locust_port,
        loadgen_metrics_port=args.loadgen_metrics_port,
        locust_workers=args.workers,
        pg_exporter_port=None if args.no_prometheus else args.pg_exporter_port,
        prometheus_port=None if args.no_prometheus else args.prometheus_port,
        durable_postgres=not args.non_durable_postgres,
    )


class _Stop(Exception):
    """SIGINT or SIGTERM arrived."""


def _raise_stop(signum: int, frame: FrameType | None) -> None:
    _ignore_stop_signals()  # one is enough: let the shutdown finish
    raise _Stop(signal.Signals(signum).name)


def _ignore_stop_signals() -> None:
    for signum in _STOP_SIGNALS:
        signal.signal(signum, signal.SIG_IGN)


@contextmanager
def _stop_on_signals() -> Iterator[None]:
    previous = {signum: signal.getsignal(signum) for signum in _STOP_SIGNALS}
    for signum in _STOP_SIGNALS:
        signal.signal(signum, _raise_stop)
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _print_ready(stack: NativeStack) -> None:
    urls = stack.urls
    rows = [
        ("service", urls["service"]),
        ("metrics", urls["metrics"]),
        ("slow API", urls["slow_api"]),
        ("postgres", urls["postgres"]),
    ]
    if "locust" in urls:
        rows += [("Locust web UI", urls["locust"]), ("Locust metrics", urls["loadgen_metrics"])]
    if "pg_exporter" in urls:
        rows.append(("pg exporter", urls["pg_exporter"]))
    if "prometheus" in urls:
        rows.append(("Prometheus", urls["prometheus"]))
        assert stack.prometheus is not None
        rows.append(("feedback loop", prometheus.graph_link(stack.prometheus.graph_page())))
    rows.append(("logs", str(stack.config.run_dir)))
    token = stack.admin_token_file
    rows.append(("admin token", f"in {token}" if token else f"as given in {ADMIN_TOKEN_ENV}"))
    print("brink up: ready")
    for name, value in rows:
        print(f"  {name:<14} {value}")
    for note in stack.notes:
        print(f"  note: {note}")
    print("Ctrl-C stops everything.", flush=True)


def _probed_rates(stack: NativeStack) -> list[str]:
    """Locust's default rates bracketing the knee a capacity probe predicts (a note says it)."""
    from loadtests.probe import ProbeFailed, probe  # asyncio and its client: only when probing

    print("brink up: probing the service for the web UI's rates (--no-probe skips it)",
          file=sys.stderr, flush=True)  # fmt: skip
    try:
        urls = stack.urls
        result = probe(urls["service"], Mix(DEFAULT_WEIGHTS), urls["slow_api"] + "/metrics")
    except ProbeFailed as exc:
        stack.notes.append(f"no capacity probe ({exc}): the web UI keeps its fixed rates")
        return []
    prediction = predict(result.demands, result.capacities)
    average, peak = rates_around(prediction.saturation_rps)
    stack.notes.append(
        f"predicted knee {prediction.saturation_rps:.0f} req/s ({prediction.bottleneck} first);"
        f" the web UI's rates: average {average:g}, peak {peak:g} req/s"
    )
    return ["--average-rps", f"{average:g}", "--peak-rps", f"{peak:g}"]


def cmd_up(args: argparse.Namespace) -> int:
    """Run the native stack until a signal (exit 0) or until one of its parts dies (exit 1)."""
    stack = NativeStack(stack_config(args))
    locust_args = (lambda _: ()) if args.no_probe else _probed_rates
    with _stop_on_signals():
        try:
            claim(stack.config.run_dir)
            stack.start(locust_args)
            publish(stack)  # <run dir>/stack.json: `brink ramp|scenario --stack native` reads it
            _print_ready(stack)
            while (failure := stack.failure()) is None:
                time.sleep(_HEALTH_CHECK_INTERVAL_S)  # a stop signal interrupts this
            print(f"brink up: {failure}\nbrink up: stopping the rest", file=sys.stderr)
            return 1
        except StackError as exc:
            print(f"brink up: {exc}", file=sys.stderr)
            return 1
        except _Stop as exc:
            print(f"brink up: {exc} received, stopping", file=sys.stderr)
            return 0
        finally:
            _ignore_stop_signals()
            unpublish(stack.config.run_dir)
            stack.stop()
            print(f"brink up: stopped; logs in {stack.config.run_dir}", file=sys.stderr)


# --- brink ramp ----------------------------------------------------------------------------------


def _share(text: str) -> float:
    """argparse type: a share in (0, 1]."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0.0 < value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be in (0, 1], got {text!r}")
    return value


def _non_negative(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not (math.isfinite(value) and value >= 0):
        raise argparse.ArgumentTypeError(f"must be a finite number >= 0, got {text!r}")
    return value


def _mix(text: str) -> str:
    try:
        parse_weights(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def _fault(text: str) -> FaultStep:
    try:
        return parse_step(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _add_ramp(subparsers: Subparsers) -> None:
    defaults = RampConfig()
    parser = subparsers.add_parser(
        "ramp",
        help="run a load profile headless and find the tipping point",
        description="Start a private native stack (or use --target, or drive a running stack"
        " with --stack), probe each route, run a load "
        "profile through Locust, find the knee and compare it with the capacity model; write "
        "reports and exit with a verdict (0 ok, 1 thresholds breached, 3 run failed, "
        "4 goodput collapsed at or below the peak, 6 the order ledger did not hold).",
    )
    parser.add_argument(
        "--profile",
        choices=sorted(PROFILES),
        default=defaults.profile,
        help="load profile (%(default)s); see `brink profiles`",
    )
    parser.add_argument(
        "--average-rps",
        type=positive(float),
        help=f"average load, req/s (default: {PREDICTED_AVERAGE_SHARE:g} x the probe's predicted"
        f" saturation when neither rate is given, else {defaults.average_rps:g})",
    )
    parser.add_argument(
        "--peak-rps",
        type=positive(float),
        help=f"peak load, req/s (default: {PREDICTED_PEAK_SHARE:g} x the predicted saturation"
        f" when neither rate is given, else {defaults.peak_rps:g})",
    )
    parser.add_argument(
        "--step-s",
        type=positive(float),
        default=defaults.step_s,
        help="length of one step, s (%(default)s)",
    )
    parser.add_argument(
        "--slo-ms",
        type=positive(float),
        default=defaults.slo_s * 1000,
        help="latency SLO: slower successes are not goodput (%(default)s)",
    )
    parser.add_argument(
        "--timeout-s",
        type=positive(float),
        default=defaults.timeout_s,
        help="client timeout, s (%(default)s)",
    )
    parser.add_argument("--mix", type=_mix, default=defaults.mix, help="request mix (%(default)s)")
    parser.add_argument(
        "--arrivals",
        choices=ARRIVALS,
        default=defaults.arrivals,
        help="gaps between arrivals: poisson (bursty) or even (exact rates)",
    )
    parser.add_argument(
        "--client-retries",
        choices=POLICIES,
        default=defaults.client_retries,
        help="the generator's own retries: none, naive (at once) or budgeted",
    )
    _add_workers(parser)
    parser.add_argument(
        "--fault",
        dest="faults",
        action="append",
        default=[],
        metavar="STEP",
        type=_fault,
        help="a fault during the load, timed from the generator's start, e.g. "
        "'at 30s set slow_api.extra_latency_s=0.2 for 10s' or 'at 40s postgres.restart' "
        "(repeatable; every knob and process fault: docs/faults.md)",
    )
    parser.add_argument(
        "--threshold",
        dest="thresholds",
        action="append",
        default=[],
        metavar="EXPR",
        type=_threshold,
        help="e.g. 'knee_rps>=150' or 'p95_at_average_ms<=100' (repeatable)",
    )
    parser.add_argument(
        "--thresholds-file", type=Path, help='TOML file with thresholds = ["knee_rps >= 150", ...]'
    )
    parser.add_argument("--target", help="base URL of a running service (loopback only)")
    add_stack_options(parser)
    parser.add_argument("--slow-api", help="base URL of its slow API (for the capacity model)")
    parser.add_argument(
        "--allow-remote", action="store_true", help="allow a target that is not this machine"
    )
    parser.add_argument(
        "--run-dir", type=Path, help="where reports go (default runs/<time>-<profile>)"
    )
    _add_settings(
        parser,
        "setting for the stack brink starts, e.g. --set DB__POOL_MAX=10 (with --stack: set live,"
        " put back after the run)",
    )
    _add_postgres_durability(parser)
    parser.add_argument("--no-probe", action="store_true", help="skip the capacity probe")
    parser.add_argument(
        "--loop-share",
        type=_share,
        metavar="SHARE",
        help="share of its core the service's event loop can use before it tips, in the"
        " capacity model (default: what the probe measured with the service kept full, or"
        f" {LOOP_SHARE} when it could not)",
    )
    parser.add_argument(
        "--no-abort", action="store_true", help="run the whole profile even after a collapse"
    )
    parser.add_argument(
        "--rps-cap",
        type=positive(float),
        default=defaults.rps_cap,
        help="hard cap on any stage's rate (%(default)s)",
    )
    parser.add_argument(
        "--duration-cap-s",
        type=positive(float),
        default=defaults.duration_cap_s,
        help="hard cap on the profile's length (%(default)s)",
    )
    parser.add_argument("--seed", type=int, help="seed of the request mix")
    parser.set_defaults(func=cmd_ramp)


def _threshold(text: str) -> Threshold:
    try:
        return Threshold.parse(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def cmd_ramp(args: argparse.Namespace) -> int:
    """Run one ramp; the exit code is the verdict (see loadtests.exit_codes)."""
    defaults = RampConfig()
    config = RampConfig(
        profile=args.profile,
        average_rps=defaults.average_rps if args.average_rps is None else args.average_rps,
        peak_rps=defaults.peak_rps if args.peak_rps is None else args.peak_rps,
        step_s=args.step_s,
        slo_s=args.slo_ms / 1000,
        timeout_s=args.timeout_s,
        mix=args.mix,
        arrivals=args.arrivals,
        client_retries=args.client_retries,
        workers=args.workers,
        rps_cap=args.rps_cap,
        duration_cap_s=args.duration_cap_s,
        abort_on_collapse=not args.no_abort,
        seed=args.seed,
        run_labels={"scenario": "ramp", "phase": args.profile},
    )
    try:
        stack = stack_choice(args)
        parse_weights(config.mix)
        config.expected_duration_s()  # validates the profile's parameters
        thresholds = list(args.thresholds)
        if args.thresholds_file:
            thresholds += load_thresholds(args.thresholds_file)
        faults = FaultSchedule(tuple(args.faults)) if args.faults else None
        if faults and args.target and any(step.action.is_process for step in faults.steps):
            raise ValueError("process faults (postgres.*, *.pause, *.cpu) need the native stack")
        target = loopback_only(args.target, args.allow_remote) if args.target else None
        slow_api = loopback_only(args.slow_api, args.allow_remote) if args.slow_api else None
    except (ValueError, OSError) as exc:
        print(f"brink ramp: {exc}", file=sys.stderr)
        return ExitCode.USAGE
    from loadtests.ramp import RampJob, run_job  # matplotlib and friends: only when ramping

    stamp = time.strftime("%Y%m%d-%H%M%S")
    job = RampJob(
        config=config,
        run_dir=(args.run_dir or Path("runs") / f"{stamp}-{config.profile}").absolute(),
        target=target,
        slow_api=slow_api,
        settings=dict(args.settings),
        thresholds=thresholds,
        probe=not args.no_probe,
        loop_share=args.loop_share,
        faults=faults,
        durable_postgres=not args.non_durable_postgres,
        rates_from_prediction=args.average_rps is None and args.peak_rps is None,
        stack=stack,
    )
    with _stop_on_signals():
        try:
            _, code = run_job(job)
        except _Stop as exc:
            print(f"brink ramp: {exc} received, stopped", file=sys.stderr)
            return ExitCode.RUN_FAILED
    return code


# --- brink compare -------------------------------------------------------------------------------


def _add_compare(subparsers: Subparsers) -> None:
    defaults = Tolerances()
    parser = subparsers.add_parser(
        "compare",
        help="compare two ramps of the same profile: did the tipping point regress?",
        description="Compare RUN_B against the baseline RUN_A (run folders or their "
        "report.json); exit 5 on a regression beyond the tolerances.",
    )
    parser.add_argument("baseline", type=Path, help="baseline run folder or report.json")
    parser.add_argument("current", type=Path, help="current run folder or report.json")
    parser.add_argument(
        "--knee-drop",
        type=_non_negative,
        default=defaults.knee_drop,
        help="allowed relative drop of the knee (%(default)s)",
    )
    parser.add_argument(
        "--p95-rise",
        type=_non_negative,
        default=defaults.p95_rise,
        help="allowed relative rise of p95 at average (%(default)s)",
    )
    parser.add_argument(
        "--error-rate-rise",
        type=_non_negative,
        default=defaults.error_rate_rise,
        help="allowed absolute rise of the error rate at average (%(default)s)",
    )
    parser.set_defaults(func=cmd_compare)


def _report(path: Path) -> dict[str, Any]:
    file = path / "report.json" if path.is_dir() else path
    data: dict[str, Any] = json.loads(file.read_text())
    return data


def cmd_compare(args: argparse.Namespace) -> int:
    try:
        reports = _report(args.baseline), _report(args.current)
        baseline, current = (summary_from_report(report) for report in reports)
        speeds = [knee_box_speed(report) for report in reports]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        print(f"brink compare: cannot read a report: {exc}", file=sys.stderr)
        return ExitCode.USAGE
    tolerances = Tolerances(
        knee_drop=args.knee_drop, p95_rise=args.p95_rise, error_rate_rise=args.error_rate_rise
    )
    comparison = compare(baseline, current, tolerances)
    print(comparison.to_markdown())
    if note := speed_note(*speeds):
        print(f"\n{note}")
    return comparison.exit_code


# --- brink profiles ------------------------------------------------------------------------------


def _add_profiles(subparsers: Subparsers) -> None:
    parser = subparsers.add_parser("profiles", help="list the named load profiles")
    parser.add_argument("--average-rps", type=positive(float), default=DEFAULT_AVERAGE_RPS)
    parser.add_argument("--peak-rps", type=positive(float), default=DEFAULT_PEAK_RPS)
    parser.add_argument("--step-s", type=positive(float), default=20.0)
    parser.set_defaults(func=cmd_profiles)


def cmd_profiles(args: argparse.Namespace) -> int:
    params = ProfileParams(average_rps=args.average_rps, peak_rps=args.peak_rps, step_s=args.step_s)
    for name, spec in PROFILES.items():
        try:
            profile = build_profile(name, params)
        except ValueError as exc:
            print(f"{name}: {spec.description} ({exc})")
            continue
        stages = ", ".join(f"{stage.rps:g}" for stage in profile.stages)
        print(f"{name:<17} {spec.description}\n{'':<17} {profile.duration_s:.0f} s: {stages} req/s")
    return ExitCode.OK


# --- brink scenario ------------------------------------------------------------------------------


def _scenario_list() -> str:
    from loadtests.scenarios.registry import SUMMARIES

    width = max(len(name) for name in SUMMARIES)
    return "\n".join(f"  {name:<{width}}  {line}" for name, line in SUMMARIES.items())


def _add_scenario(subparsers: Subparsers) -> None:
    parser = subparsers.add_parser(
        "scenario",
        help="run a named lesson (tipping, retry storm, metastable...) and give its verdict",
        description="Start a private native stack (or drive a running one: --stack), run the\n"
        "named scenario and write its report (scenario.json, summary.md, report.html).\n"
        "Exit 0 when the lesson showed, 1 when it did not, 3 when the run failed.\n\n"
        "scenarios:\n" + _scenario_list(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("name", nargs="?", metavar="NAME", help="the scenario to run")
    parser.add_argument("--list", action="store_true", help="list the scenarios and exit")
    parser.add_argument(
        "--quick", action="store_true", help="short stages (CI): rougher figures, same lesson"
    )
    parser.add_argument(
        "--step-s", type=positive(float), help="length of one stage, s (default: the scenario's)"
    )
    parser.add_argument("--seed", type=int, help="seed of the request mix")
    parser.add_argument(
        "--slo-ms",
        type=positive(float),
        default=500.0,
        help="latency SLO: slower successes are not goodput (%(default)s)",
    )
    _add_workers(parser)
    parser.add_argument(
        "--repeat",
        type=positive(int),
        default=1,
        metavar="N",
        help="run the scenario's trial N times where it repeats one (metastable) (%(default)s)",
    )
    _add_settings(
        parser,
        "stack setting over the scenario's own, e.g. --set DB__POOL_MAX=4 (with --stack: set"
        " live, put back after the run)",
    )
    add_stack_options(parser)
    _add_postgres_durability(parser)
    parser.add_argument(
        "--run-dir",
        "--out",  # its first name; kept so older commands still run
        dest="run_dir",
        type=Path,
        help="where reports go (default runs/<time>-scenario-<name>), as for brink ramp",
    )
    parser.set_defaults(func=cmd_scenario)


def scenario_options(args: argparse.Namespace) -> ScenarioOptions:
    """The :class:`ScenarioOptions` that ``brink scenario`` arguments describe."""
    return ScenarioOptions(
        quick=args.quick,
        step_s=args.step_s,
        seed=args.seed,
        slo_s=args.slo_ms / 1000,
        workers=args.workers,
        repeat=int(args.repeat),
        settings=dict(args.settings),
        durable_postgres=not args.non_durable_postgres,
        stack=stack_choice(args),
    )


def cmd_scenario(args: argparse.Namespace) -> int:
    """Run one scenario; the exit code is its verdict (see loadtests.exit_codes)."""
    from loadtests.scenarios.registry import SCENARIOS

    if args.list:
        print(_scenario_list())
        return ExitCode.OK
    if args.name not in SCENARIOS:
        what = "a scenario name is required" if args.name is None else f"unknown {args.name!r}"
        print(f"brink scenario: {what}; choose one of:\n{_scenario_list()}", file=sys.stderr)
        return ExitCode.USAGE
    try:
        options = scenario_options(args)
    except ValueError as exc:
        print(f"brink scenario: {exc}", file=sys.stderr)
        return ExitCode.USAGE
    from loadtests.scenarios.runner import run_scenario  # matplotlib and friends: only now

    stamp = time.strftime("%Y%m%d-%H%M%S")
    out = (args.run_dir or Path("runs") / f"{stamp}-scenario-{args.name}").absolute()
    with _stop_on_signals():
        try:
            _, code = run_scenario(args.name, options, out)
        except _Stop as exc:
            print(f"brink scenario: {exc} received, stopped", file=sys.stderr)
            return ExitCode.RUN_FAILED
    return code


# --- dispatch ----------------------------------------------------------------------------------

_SUBCOMMANDS: tuple[Callable[[Subparsers], None], ...] = (
    _add_up,
    _add_ramp,
    _add_compare,
    _add_profiles,
    _add_scenario,
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="brink", description="A live load-testing lab: find where a backend tips over."
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for add in _SUBCOMMANDS:
        add(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``brink`` and ``python -m loadtests``; returns the exit code."""
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:  # --help (0) or a usage error (2)
        return exc.code if isinstance(exc.code, int) else 2
    command: Command = args.func
    return command(args)
