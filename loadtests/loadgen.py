"""brink's plumbing inside Locust: options, the arrival engine, the shape, the series.

The locustfile (users and the shape class only) delegates here. Roles:

- every process that sends load (the local runner, or each worker) owns one
  :class:`~loadtests.arrivals.ArrivalEngine` and one :class:`~loadtests.series.Series`;
- the master (or the local runner) runs the shape: each tick it broadcasts the rate per
  dispatcher (``brink_rate``), records the stage timeline, merges the workers' series deltas
  (sent with Locust's own worker reports), serves ``/metrics``, and at the end writes the
  series and timeline to ``--brink-out`` for ``brink ramp``'s analysis; with the web UI it also
  checks the form and shows the live tab (:mod:`loadtests.web_ui`);
- with ``--brink-out``, every process that sends load writes its own order ledger
  (``ledger-<pid>.jsonl``, :mod:`loadtests.ledger`) into the same folder: no messaging, so
  nothing depends on a worker's last report reaching the master before a SIGTERM.

Every run starts from the options as they are then (:mod:`loadtests.run_settings`): the web
UI's form may change any of them between runs, and Locust hands the master's options to the
workers with each spawn message. So each run gets a new shape driver and stage timeline on the
master, and a new arrival engine (mix, retry policy, host) in every process that sends load;
only the order ledger stays open across runs, one per process.
"""

from __future__ import annotations

import json
import logging
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gevent
from locust.env import Environment
from locust.runners import MasterRunner, WorkerRunner

from loadtests import web_ui
from loadtests.arrivals import ArrivalEngine
from loadtests.client_retry import POLICIES, ClientRetry
from loadtests.exit_codes import ExitCode
from loadtests.ledger import LedgerWriter
from loadtests.loadgen_metrics import RunnerView, parse_run_labels, serve_metrics
from loadtests.mix import DEFAULT_WEIGHTS
from loadtests.pacing import ARRIVALS
from loadtests.profiles import DEFAULT_AVERAGE_RPS, DEFAULT_PEAK_RPS, PROFILES
from loadtests.run_settings import RunSettings, run_settings
from loadtests.series import Series
from loadtests.shapes import ShapeDriver, Tick, rate_per_dispatcher

RATE_MESSAGE = "brink_rate"
SERIES_KEY = "brink_series"
logger = logging.getLogger(__name__)


@dataclass
class _State:
    """Per-process state; one instance, created by :func:`on_init`."""

    series: Series
    engine: ArrivalEngine | None = None
    """This run's engine in a process that sends load; None until a run has started."""
    ledger: LedgerWriter | None = None
    """The process's order ledger (``--brink-out``), opened at its first run, kept after."""
    rate: float = 0.0
    driver: ShapeDriver | None = None
    timeline: list[dict[str, Any]] = field(default_factory=list)
    ended_at: float | None = None
    stop_requested: bool = False


_state: _State | None = None


def state() -> _State:
    if _state is None:
        raise RuntimeError("brink's Locust plumbing was not initialised (init event)")
    return _state


def add_options(parser: Any) -> None:
    """brink's options; the ones shown in the web UI can be changed there before a run."""
    parser.add_argument(
        "--load-profile",
        choices=sorted(PROFILES),
        default="peak",
        help="Named load profile (see `brink profiles`).",
    )
    parser.add_argument(
        "--average-rps", type=float, default=DEFAULT_AVERAGE_RPS, help="Average load, req/s."
    )
    parser.add_argument(
        "--peak-rps", type=float, default=DEFAULT_PEAK_RPS, help="Peak load, req/s."
    )
    parser.add_argument("--step-s", type=float, default=30.0, help="Length of one step, s.")
    parser.add_argument(
        "--slo-ms",
        type=float,
        default=500.0,
        help="Latency SLO: a success slower than this is not goodput.",
    )
    parser.add_argument(
        "--mix",
        default=",".join(f"{k}={v}" for k, v in DEFAULT_WEIGHTS.items()),
        help="Request mix weights, e.g. item=6,order=2,quote=1,cpu=1.",
    )
    parser.add_argument(
        "--arrivals",
        choices=ARRIVALS,
        default="poisson",
        help="Gaps between arrivals: poisson (bursty, realistic) or even (exact rates).",
    )
    parser.add_argument(
        "--client-retries",
        choices=POLICIES,
        default="none",
        help="The generator's own retries: none, naive (at once, 4 tries) or budgeted.",
    )
    parser.add_argument(
        "--timeout-s",
        type=float,
        default=10.0,
        include_in_web_ui=False,
        help="Client timeout; a timed-out request is a failure.",
    )
    parser.add_argument(
        "--slice-rps",
        type=float,
        default=10.0,
        include_in_web_ui=False,
        help="Rate one dispatcher (Locust user) sends at most.",
    )
    parser.add_argument(
        "--max-in-flight",
        type=int,
        default=2000,
        include_in_web_ui=False,
        help="Per process: arrivals over this many in flight are dropped.",
    )
    parser.add_argument(
        "--rps-cap",
        type=float,
        default=2000.0,
        include_in_web_ui=False,
        help="Hard cap on any stage's rate.",
    )
    parser.add_argument(
        "--duration-cap-s",
        type=float,
        default=1800.0,
        include_in_web_ui=False,
        help="Hard cap on the profile's length.",
    )
    parser.add_argument(
        "--seed",
        type=int,
        default=None,
        include_in_web_ui=False,
        help="Seed for the request mix (default: random).",
    )
    parser.add_argument(
        "--brink-out",
        default="",
        include_in_web_ui=False,
        help="Write the per-second series and stage timeline here at the end (and each"
        " process's order ledger, ledger-<pid>.jsonl, next to it).",
    )
    parser.add_argument(
        "--brink-metrics-port",
        type=int,
        default=0,
        include_in_web_ui=False,
        help="Serve the generator's Prometheus /metrics on 127.0.0.1:PORT.",
    )
    parser.add_argument(
        "--brink-metrics-host",
        default="127.0.0.1",
        include_in_web_ui=False,
        help="Interface for --brink-metrics-port (0.0.0.0 only inside a container).",
    )
    parser.add_argument(
        "--brink-run-label",
        action="append",
        default=[],
        include_in_web_ui=False,
        help="What this run is, for dashboards: scenario=NAME or phase=NAME (repeatable).",
    )


def _options(environment: Environment) -> Any:
    if environment.parsed_options is None:
        raise RuntimeError("Locust was started without parsed options")
    return environment.parsed_options


def on_init(environment: Environment) -> None:
    global _state
    options = _options(environment)
    _state = _State(series=Series(slo_s=options.slo_ms / 1000))
    runner = environment.runner
    if runner is None:
        return
    if not isinstance(runner, MasterRunner):
        runner.register_message(RATE_MESSAGE, _on_rate)
    if isinstance(runner, WorkerRunner):
        environment.events.report_to_master.add_listener(_on_report_to_master)
    else:
        environment.events.worker_report.add_listener(_on_worker_report)
        if options.brink_metrics_port:
            serve_metrics(
                _state.series,
                _runner_view(environment),
                options.brink_metrics_port,
                options.brink_metrics_host,
            )
    if options.headless and not isinstance(runner, WorkerRunner):
        # Headless with a shape, Locust installs no SIGTERM handler until the shape has ended
        # (and Ctrl-C does not stop it): end the shape ourselves, so the run still shuts down
        # through Locust's own path and writes --brink-out.
        for signum in (signal.SIGTERM, signal.SIGINT):
            gevent.signal_handler(signum, _request_stop)
    if not isinstance(runner, WorkerRunner):
        environment.events.test_stop.add_listener(_on_test_stop)
        labels = parse_run_labels(options.brink_run_label or [])
        web_ui.install(environment, _state.series, lambda: state().timeline, labels)
    environment.events.test_start.add_listener(_on_test_start)
    environment.events.quitting.add_listener(_on_quitting)


def _request_stop() -> None:
    state().stop_requested = True


def _on_test_start(environment: Environment, **_: Any) -> None:
    """A run starts (in every process): this run's settings, and a new engine to send it."""
    current = state()
    current.engine = None  # whatever happens next, never the previous run's mix or host
    try:
        settings = run_settings(_options(environment))
    except ValueError as exc:
        logger.error("brink: this run sends nothing: %s", exc)
        return
    current.series.slo_s = settings.slo_s
    if not isinstance(environment.runner, MasterRunner):
        current.engine = _new_engine(environment, settings)


def _new_engine(environment: Environment, settings: RunSettings) -> ArrivalEngine:
    options, current = _options(environment), state()
    if current.ledger is None and options.brink_out:
        current.ledger = LedgerWriter.for_process(Path(options.brink_out).parent)
    engine = ArrivalEngine(
        environment,
        environment.host or "",
        settings.mix,
        current.series,
        options.timeout_s,
        options.max_in_flight,
        options.seed,
        ClientRetry(settings.retry_policy),
        current.ledger,
    )
    engine.rate_per_dispatcher = current.rate
    return engine


def _on_test_stop(environment: Environment, **_: Any) -> None:
    """The run is over, ended by its shape or stopped from the web UI: the next one starts
    its profile from the beginning."""
    current = state()
    current.driver = None
    if current.ended_at is None:
        current.ended_at = time.time()


def _on_rate(environment: Environment, msg: Any, **_: Any) -> None:
    current = state()
    current.rate = float(msg.data)
    if current.engine is not None:
        current.engine.rate_per_dispatcher = current.rate


def _on_report_to_master(client_id: str, data: dict[str, Any]) -> None:
    data[SERIES_KEY] = {str(k): v.to_dict() for k, v in state().series.take().items()}


def _on_worker_report(client_id: str, data: dict[str, Any]) -> None:
    seconds = data.get(SERIES_KEY)
    if seconds:
        state().series.merge(Series.seconds_from_dict(seconds))


def _begin_run(environment: Environment, clock: Any) -> ShapeDriver | None:
    """The shape's first tick of a run: a new driver and timeline; None refuses the run."""
    options = _options(environment)
    try:
        settings = run_settings(options)
    except ValueError as exc:
        logger.error("brink: not starting the run: %s", exc)
        if options.headless:
            environment.process_exit_code = ExitCode.USAGE
        return None
    current = state()
    current.timeline.clear()
    current.ended_at = None
    return ShapeDriver(settings.schedule, options.slice_rps, clock)


def shape_tick(environment: Environment, clock: Any) -> tuple[int, float] | None:
    """The shape's tick: users for Locust, the rate for the dispatchers, the timeline."""
    current = state()
    if current.driver is None:
        current.driver = _begin_run(environment, clock)
        if current.driver is None:
            return None
    result = current.driver.tick()
    tick = current.driver.current()
    if tick is None or result is None or current.stop_requested:
        if current.ended_at is None:
            current.ended_at = time.time()
        _broadcast(environment, 0.0)
        current.driver = None
        return None
    if not current.timeline or current.timeline[-1]["index"] != tick.stage_index:
        current.timeline.append(
            {
                "index": tick.stage_index,
                "name": tick.stage_name,
                "rps": tick.rps,
                "start": time.time(),
            }
        )
    users = result[0]
    _broadcast(environment, rate_per_dispatcher(tick.rps, users) if users else 0.0)
    return result


def _broadcast(environment: Environment, rate: float) -> None:
    if environment.runner is not None:
        environment.runner.send_message(RATE_MESSAGE, rate)


def current_tick() -> Tick | None:
    driver = state().driver
    return driver.current() if driver is not None else None


def _runner_view(environment: Environment) -> RunnerView:
    def users() -> int:
        return environment.runner.user_count if environment.runner else 0

    def requests_by_name() -> dict[tuple[str, str], tuple[int, int]]:
        return {
            (entry.method or "", entry.name): (entry.num_requests, entry.num_failures)
            for entry in environment.stats.entries.values()
        }

    def stage() -> tuple[int, str, float] | None:
        tick = current_tick()
        return None if tick is None else (tick.stage_index, tick.stage_name, tick.rps)

    def in_flight() -> int:
        engine = state().engine
        return engine.in_flight if engine is not None else 0

    labels = parse_run_labels(_options(environment).brink_run_label or [])
    return RunnerView(users, requests_by_name, stage, in_flight, labels)


def _on_quitting(environment: Environment, **_: Any) -> None:
    options = _options(environment)
    current = state()
    if not isinstance(environment.runner, WorkerRunner) and options.brink_out:
        _write_out(environment, current, Path(options.brink_out), options.timeout_s)
    if current.ledger is not None:
        # Answers arriving after this are not logged: their orders stay "sent", i.e. unknown.
        current.ledger.close()


def _write_out(environment: Environment, current: _State, path: Path, timeout_s: float) -> None:
    if current.engine is not None:
        current.engine.join(timeout_s=timeout_s)
    document = {
        "timeline": current.timeline,
        "ended_at": current.ended_at or time.time(),
        "slo_s": current.series.slo_s,
        "seconds": current.series.to_dict(),
        "locust_totals": {
            "requests": environment.stats.total.num_requests,
            "failures": environment.stats.total.num_failures,
        },
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document))
