"""A scripted ramp: run Locust headless against a target and gather per-stage samples.

The runner only gathers. Locust runs in its own process (it patches its process for gevent)
with brink's locustfile; while it runs, the runner scrapes the service's ``/metrics`` and the
generator's every second, prints progress, enforces the watchdog and, when asked, stops early
on collapse. At the end it joins the generator's per-second series with the service's scrapes
over each stage's measured window into :class:`~loadtests.samples.StageSample` values.
"""

from __future__ import annotations

import json
import math
import signal
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from loadtests.box_speed import BoxSpeed, cpu_speeds
from loadtests.ledger import LEDGER_GLOB
from loadtests.locustfiles import BRINK_LOCUSTFILE
from loadtests.native.process import ManagedProcess, free_port
from loadtests.profiles import (
    DEFAULT_AVERAGE_RPS,
    DEFAULT_PEAK_RPS,
    Profile,
    ProfileParams,
    build_profile,
)
from loadtests.samples import StageSample
from loadtests.scrape import Scrape, Scraper, server_window
from loadtests.series import Series, window
from loadtests.tipping import AbortRule, abort_reason


@dataclass(frozen=True)
class RampConfig:
    """What to run: the profile, its rates, the SLO and the generator's limits."""

    profile: str = "peak"
    average_rps: float = DEFAULT_AVERAGE_RPS
    peak_rps: float = DEFAULT_PEAK_RPS
    step_s: float = 20.0
    slo_s: float = 0.5
    timeout_s: float = 10.0
    mix: str = "item=6,order=2,quote=1,cpu=1"
    arrivals: str = "poisson"
    """Gaps between arrivals: ``poisson`` (realistic bursts) or ``even`` (exact rates)."""
    client_retries: str = "none"
    """The generator's own retries: ``none``, ``naive`` or ``budgeted``."""
    workers: int = 0
    """0: one generator process; N: a Locust master with N worker processes."""
    slice_rps: float = 10.0
    max_in_flight: int = 2000
    rps_cap: float = 2000.0
    duration_cap_s: float = 1800.0
    settle_s: float | None = None
    """Seconds at the start of each stage left out of its figures (default: 30%, at most 5)."""
    abort_on_collapse: bool = True
    seed: int | None = None
    run_labels: Mapping[str, str] = field(default_factory=dict)
    """What the run is, for dashboards: ``{"scenario": ..., "phase": ...}``. The generator
    exports them (``brink_loadgen_run_info``), and a stack's Prometheus labels its target so."""

    def settle_for(self, stage_s: float) -> float:
        return self.settle_s if self.settle_s is not None else min(5.0, 0.3 * stage_s)

    def build_profile(self) -> Profile:
        """The named profile with these rates; ``ValueError`` names a bad parameter."""
        params = ProfileParams(
            average_rps=self.average_rps,
            peak_rps=self.peak_rps,
            step_s=self.step_s,
            rps_cap=self.rps_cap,
            duration_cap_s=self.duration_cap_s,
        )
        return build_profile(self.profile, params)

    def expected_duration_s(self) -> float:
        """The profile's length plus the drain tail."""
        return self.build_profile().duration_s + self.timeout_s + 5.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class RampRun:
    """What a ramp gathered."""

    stages: list[StageSample]
    timeline: list[dict[str, Any]]
    locust_exit: int | None
    aborted: str | None = None
    service_scrapes: list[Scrape] = field(default_factory=list)


def _locust_argv(config: RampConfig, host: str, out: Path, metrics_port: int) -> list[str]:
    argv = [
        sys.executable,
        "-m",
        "locust",
        "-f",
        str(BRINK_LOCUSTFILE),
        "--headless",
        "--host",
        host,
        "--load-profile",
        config.profile,
        "--average-rps",
        str(config.average_rps),
        "--peak-rps",
        str(config.peak_rps),
        "--step-s",
        str(config.step_s),
        "--slo-ms",
        str(config.slo_s * 1000),
        "--timeout-s",
        str(config.timeout_s),
        "--mix",
        config.mix,
        "--arrivals",
        config.arrivals,
        "--client-retries",
        config.client_retries,
        "--slice-rps",
        str(config.slice_rps),
        "--max-in-flight",
        str(config.max_in_flight),
        "--rps-cap",
        str(config.rps_cap),
        "--duration-cap-s",
        str(config.duration_cap_s),
        "--brink-out",
        str(out),
        "--brink-metrics-port",
        str(metrics_port),
        "--only-summary",
        "--loglevel",
        "WARNING",
        "--exit-code-on-error",
        "0",
    ]
    if config.seed is not None:
        argv += ["--seed", str(config.seed)]
    for key, value in sorted(config.run_labels.items()):
        argv += ["--brink-run-label", f"{key}={value}"]
    if config.workers:
        # Locust's master binds every interface by default: keep it on loopback.
        port = str(free_port())
        argv += ["--processes", str(config.workers), "--master-bind-host", "127.0.0.1"]
        argv += ["--master-bind-port", port, "--master-host", "127.0.0.1", "--master-port", port]
    return argv


@dataclass
class _LiveStage:
    """A stage as seen live from the generator's /metrics, for progress and early abort."""

    index: int
    name: str
    target: float
    first: Scrape
    last: Scrape

    def sample(self) -> StageSample:
        elapsed = max(self.last.at - self.first.at, 1e-9)

        def delta(name: str) -> float:
            return self.last.total(name) - self.first.total(name)

        histogram = {
            i: int(delta_bucket)
            for i, delta_bucket in enumerate(_bucket_deltas(self.first, self.last))
            if delta_bucket > 0
        }
        return StageSample(
            index=self.index,
            name=self.name,
            target_rps=self.target,
            window_s=elapsed,
            offered_rps=delta("brink_loadgen_arrivals_total") / elapsed,
            achieved_rps=delta("brink_loadgen_completed_total") / elapsed,
            goodput_rps=delta("brink_loadgen_good_total") / elapsed,
            dropped_rps=delta("brink_loadgen_dropped_total") / elapsed,
            p50_s=_bucket_quantile(histogram, self.last, 0.5),
            p95_s=_bucket_quantile(histogram, self.last, 0.95),
            requests=int(delta("brink_loadgen_completed_total")),
        )


def _buckets(scrape: Scrape) -> list[tuple[float, float]]:
    """``(upper bound, cumulative count)`` of the generator's latency histogram."""
    rows = [
        (float(dict(labels)["le"]), value)
        for (name, labels), value in scrape.values.items()
        if name == "brink_loadgen_latency_seconds_bucket"
    ]
    return sorted(rows)


def _bucket_deltas(first: Scrape, last: Scrape) -> list[float]:
    before = dict(_buckets(first))
    cumulative = [(le, count - before.get(le, 0.0)) for le, count in _buckets(last)]
    return [count - (cumulative[i - 1][1] if i else 0.0) for i, (_, count) in enumerate(cumulative)]


def _bucket_quantile(histogram: dict[int, int], scrape: Scrape, q: float) -> float | None:
    edges = [le for le, _ in _buckets(scrape)]
    total = sum(histogram.values())
    if not total:
        return None
    rank, seen = math.ceil(q * total), 0
    for index in sorted(histogram):
        seen += histogram[index]
        if seen >= rank:
            return edges[index] if edges[index] != math.inf else edges[index - 1]
    return None


def _progress_line(
    live: _LiveStage, stages_total: int, elapsed_s: float, total_s: float, server: Scrape | None
) -> str:
    sample = live.sample()
    p95 = f"{sample.p95_s * 1000:.0f} ms" if sample.p95_s is not None else "-"
    pool = ""
    if server is not None:
        pool = (
            f" | pool {server.total('brink_db_pool_in_use'):.0f}/"
            f"{server.total('brink_db_pool_max'):.0f}"
            f" waiters {server.total('brink_db_pool_waiters'):.0f}"
        )
    left = max(0.0, total_s - elapsed_s)
    where = (
        live.name
        if live.index >= stages_total
        else (f"stage {live.index + 1}/{stages_total} {live.name}")
    )
    return (
        f"[{elapsed_s:4.0f}s, {left:4.0f}s left] {where}: offered {sample.offered_rps:6.1f}"
        f" achieved {sample.achieved_rps:6.1f}"
        f" good {sample.goodput_rps:6.1f} req/s | p95 {p95}{pool}"
    )


Expose = Callable[[str, Mapping[str, str]], AbstractContextManager[object]]
"""Make the generator's ``/metrics`` (``host:port``, the run's labels) visible to a stack's
Prometheus while the block runs (:meth:`loadtests.attach.session.Attached.expose`)."""


def run_ramp(
    config: RampConfig,
    service_url: str,
    run_dir: Path,
    progress: Callable[[str], None] = lambda line: print(line, file=sys.stderr, flush=True),
    abort_rule: AbortRule | None = None,
    expose: Expose | None = None,
) -> RampRun:
    """Run ``config`` against ``service_url``; logs and raw data go to ``run_dir``. With
    ``expose``, a stack's Prometheus scrapes the generator while it runs."""
    metrics_port = free_port()
    with (expose or _unexposed)(f"127.0.0.1:{metrics_port}", config.run_labels):
        return _run_locust(config, service_url, run_dir, progress, abort_rule, metrics_port)


def _unexposed(address: str, labels: Mapping[str, str]) -> AbstractContextManager[object]:
    return nullcontext()


def _run_locust(
    config: RampConfig,
    service_url: str,
    run_dir: Path,
    progress: Callable[[str], None],
    abort_rule: AbortRule | None,
    metrics_port: int,
) -> RampRun:
    run_dir.mkdir(parents=True, exist_ok=True)
    out = run_dir / "loadgen.json"
    out.unlink(missing_ok=True)
    for old in run_dir.glob(LEDGER_GLOB):  # an earlier run's ledger is not this one's
        old.unlink()
    locust = ManagedProcess(
        "locust", _locust_argv(config, service_url, out, metrics_port), run_dir / "locust.log"
    ).start()
    service = Scraper(service_url + "/metrics")
    generator = Scraper(f"http://127.0.0.1:{metrics_port}/metrics")
    total_s = config.expected_duration_s()
    deadline = time.monotonic() + total_s + 30.0
    stages_total = len(config.build_profile().stages)
    started = time.monotonic()
    aborted: str | None = None
    live: _LiveStage | None = None
    finished: list[StageSample] = []
    speeds: list[tuple[float, tuple[float, ...]]] = []
    try:
        while locust.running():
            time.sleep(1.0)
            speeds.append((time.time(), cpu_speeds()))
            server = service.scrape()
            scrape = generator.scrape()
            if time.monotonic() > deadline:
                aborted = f"watchdog: still running {total_s + 30:.0f} s after the start"
                break
            if scrape is None:
                continue
            index = int(scrape.total("brink_loadgen_stage_index"))
            if index < 0:
                continue
            if live is None or live.index != index:
                if live is not None:
                    finished.append(live.sample())
                    if config.abort_on_collapse and (
                        reason := abort_reason(finished, config.slo_s, abort_rule or AbortRule())
                    ):
                        aborted = f"collapse: {reason}"
                        break
                name = next(
                    (
                        dict(labels)["stage"]
                        for (n, labels), v in scrape.values.items()
                        if n == "brink_loadgen_stage" and v == 1
                    ),
                    str(index),
                )
                live = _LiveStage(
                    index, name, scrape.total("brink_loadgen_target_rps"), scrape, scrape
                )
            else:
                live.last = scrape
                progress(
                    _progress_line(live, stages_total, time.monotonic() - started, total_s, server)
                )
    finally:
        if locust.running():
            locust.signal(signal.SIGTERM)  # Locust writes its series on the way out
            _wait(locust, config.timeout_s + 15.0)
        exit_code = locust.stop()
        service.scrape()
        service.close()
        generator.close()
    stages, timeline = _stages_from(out, service.scrapes, config, speeds)
    return RampRun(stages, timeline, exit_code, aborted, service.scrapes)


def _wait(process: ManagedProcess, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while process.running() and time.monotonic() < deadline:
        time.sleep(0.2)


def _stages_from(
    out: Path,
    scrapes: Sequence[Scrape],
    config: RampConfig,
    speeds: Sequence[tuple[float, tuple[float, ...]]] = (),
) -> tuple[list[StageSample], list[dict[str, Any]]]:
    """Join the generator's series with the service's scrapes (and the box's speed readings,
    each at its wall-clock time) over each stage's window."""
    if not out.exists():
        return [], []
    document = json.loads(out.read_text())
    seconds = Series.seconds_from_dict(document["seconds"])
    timeline = document["timeline"]
    ends = [entry["start"] for entry in timeline[1:]] + [document["ended_at"]]
    stages = []
    for entry, end in zip(timeline, ends, strict=True):
        if entry["name"] == "drain":
            continue
        start = entry["start"] + config.settle_for(end - entry["start"])
        first, last = math.ceil(start), math.floor(end)
        if last - first < 1:
            continue
        client = window(seconds, first, last)
        speed = BoxSpeed.of([reading for at, reading in speeds if first <= at <= last])
        stages.append(
            StageSample(
                index=entry["index"],
                name=entry["name"],
                target_rps=entry["rps"],
                window_s=client.window_s,
                offered_rps=client.offered_rps,
                achieved_rps=client.achieved_rps,
                goodput_rps=client.goodput_rps,
                dropped_rps=client.dropped_rps,
                p50_s=client.p50_s,
                p95_s=client.p95_s,
                p99_s=client.p99_s,
                errors=client.errors,
                requests=client.requests,
                server=server_window(scrapes, first, last),
                box_speed_ms=None if speed is None else speed.per_cpu_ms,
            )
        )
    return stages, timeline
