"""(a) How fast can brink's load generator offer load? A ramp against a canned target.

brink's own locustfile runs headless (``python -m locust -f loadtests/locustfiles/brink.py``)
on a breakpoint profile against :mod:`benchmarks.canned`, with one process or with
``--processes N``. Every half second the Locust process tree's CPU is read from ``/proc``; the
per-stage offered, dropped and latency figures come from the ``--brink-out`` series, the live
progress from ``--brink-metrics-port``. Once the generator clearly drops arrivals the run is
ended early (SIGTERM to the master: the locustfile then stops the shape and writes its series).
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks import cpu
from benchmarks.generator_stages import Criteria, GeneratorStage, max_kept_up, stages_of
from loadtests.locustfiles import BRINK_LOCUSTFILE
from loadtests.native.process import ManagedProcess, free_port
from loadtests.profiles import ProfileParams, build_profile
from loadtests.scrape import Scrape, Scraper

Say = Callable[[str], None]
REPO = Path(__file__).resolve().parent.parent
STOP_WINDOW_S = 8.0
"""Look-back of the early stop: dropped arrivals over this many seconds of scrapes ..."""
STOP_DROPPED_SHARE = 0.05
"""... reaching this share of all arrivals ends the run."""
PROGRESS_WINDOW_S = 6.0
ARRIVALS = "brink_loadgen_arrivals_total"
DROPPED = "brink_loadgen_dropped_total"


@dataclass(frozen=True)
class GeneratorPlan:
    """One generator ramp: brink's breakpoint from ``start_rps``, ``step_rps`` more per step.

    brink's breakpoint adds 10% of the peak per step, so the peak is ``10 x step_rps`` (at
    least ``start_rps``) and the last possible stage 3 x that peak.
    """

    workers: int
    start_rps: float
    step_rps: float
    step_s: float = 4.0
    settle_s: float = 1.0
    timeout_s: float = 2.0
    slice_rps: float = 10.0
    criteria: Criteria = field(default_factory=Criteria)

    @property
    def peak_rps(self) -> float:
        return max(self.start_rps, 10 * self.step_rps)

    @property
    def rps_cap(self) -> float:
        return 3 * self.peak_rps

    def duration_s(self) -> float:
        params = ProfileParams(
            self.start_rps, self.peak_rps, step_s=self.step_s, rps_cap=self.rps_cap
        )
        return build_profile("breakpoint", params).duration_s + self.timeout_s + 5.0


@dataclass(frozen=True)
class GeneratorResult:
    plan: GeneratorPlan
    stages: list[GeneratorStage]
    stopped_early: bool
    wall_s: float

    @property
    def max_stage(self) -> GeneratorStage | None:
        return max_kept_up(self.stages)


@contextmanager
def canned_target(run_dir: Path) -> Iterator[tuple[str, int]]:
    """Start :mod:`benchmarks.canned` on a free port; yields its URL and pid."""
    port = free_port()
    process = ManagedProcess(
        "canned target",
        [sys.executable, "-m", "benchmarks.canned", "--port", str(port)],
        run_dir / "canned.log",
        env={"PYTHONPATH": str(REPO)},
    ).start()
    try:
        url = f"http://127.0.0.1:{port}"
        process.wait_http_ready(url + "/healthz", timeout_s=15.0)
        yield url, process.pid
    finally:
        process.stop()


def _argv(plan: GeneratorPlan, host: str, out: Path, metrics_port: int) -> list[str]:
    argv = [
        sys.executable, "-m", "locust", "-f", str(BRINK_LOCUSTFILE), "--headless", "--host", host,
        "--load-profile", "breakpoint", "--average-rps", str(plan.start_rps),
        "--peak-rps", str(plan.peak_rps),
        "--step-s", str(plan.step_s), "--timeout-s", str(plan.timeout_s), "--mix", "cpu=1",
        "--slice-rps", str(plan.slice_rps), "--rps-cap", str(plan.rps_cap),
        "--brink-out", str(out), "--brink-metrics-port", str(metrics_port),
        "--only-summary", "--loglevel", "WARNING", "--exit-code-on-error", "0",
    ]  # fmt: skip
    if plan.workers:
        port = str(free_port())  # never Locust's default 5557 on all interfaces
        argv += ["--processes", str(plan.workers), "--master-bind-host", "127.0.0.1"]
        argv += ["--master-bind-port", port, "--master-port", port]
    return argv


def _wall_sample(pid: int, tree: bool) -> cpu.CpuSample:
    return dataclasses.replace(cpu.sample(pid, pid if tree else None), at=time.time())


def _back(history: list[Scrape], seconds: float) -> Scrape | None:
    """The latest scrape at least ``seconds`` older than the newest one."""
    now = history[-1]
    return next((s for s in reversed(history) if now.at - s.at >= seconds), None)


def _dropping(history: list[Scrape]) -> bool:
    """True when dropped arrivals reached STOP_DROPPED_SHARE over the last STOP_WINDOW_S."""
    now, old = history[-1], _back(history, STOP_WINDOW_S)
    if old is None:
        return False
    dropped = now.total(DROPPED) - old.total(DROPPED)
    sent = now.total(ARRIVALS) - old.total(ARRIVALS) + dropped
    return sent > 0 and dropped / sent >= STOP_DROPPED_SHARE


def _progress(label: str, history: list[Scrape], cores: float) -> str:
    """Offered over the last few seconds (workers report to the master every 3 s)."""
    now, old = history[-1], _back(history, PROGRESS_WINDOW_S)
    offered = "-"
    if old is not None:
        offered = f"{(now.total(ARRIVALS) - old.total(ARRIVALS)) / (now.at - old.at):.0f}"
    return (
        f"{label}: target {now.total('brink_loadgen_target_rps'):.0f} req/s, offered {offered}/s"
        f" over the last {PROGRESS_WINDOW_S:g} s, dropped so far {now.total(DROPPED):.0f},"
        f" generator CPU {cores:.2f} cores"
    )


@dataclass
class _Samples:
    """What the loop gathers: CPU readings (wall-clock ``at``) and generator scrapes."""

    generator: list[cpu.CpuSample] = field(default_factory=list)
    target: list[cpu.CpuSample] = field(default_factory=list)
    scrapes: list[Scrape] = field(default_factory=list)

    def cores_now(self) -> float:
        return self.generator[-1].usage_since(self.generator[-3]).tree_cores


def _watch(
    locust: ManagedProcess, target_pid: int, scraper: Scraper, deadline: float, label: str,
    say: Say,
) -> tuple[_Samples, bool]:  # fmt: skip
    """Sample every half second until Locust exits; end it early once it drops arrivals."""
    samples, stopped_early, last_said = _Samples(), False, 0.0
    while locust.running() and time.monotonic() < deadline:
        samples.generator.append(_wall_sample(locust.pid, tree=True))
        samples.target.append(_wall_sample(target_pid, tree=False))
        scrape = scraper.scrape()
        if scrape is not None:
            samples.scrapes.append(scrape)
            if time.monotonic() - last_said >= 4.0 and len(samples.generator) > 2:
                say(_progress(label, samples.scrapes, samples.cores_now()))
                last_said = time.monotonic()
            if not stopped_early and _dropping(samples.scrapes):
                say(f"{label}: the generator is dropping arrivals: ending the ramp")
                os.kill(locust.pid, signal.SIGTERM)  # the master only: it stops the workers
                stopped_early = True
        time.sleep(0.5)
    return samples, stopped_early


def run_generator(
    plan: GeneratorPlan, url: str, target_pid: int, run_dir: Path, say: Say
) -> GeneratorResult:
    """Run one generator ramp against the canned target at ``url``."""
    label = f"(a) {f'--workers {plan.workers}' if plan.workers else '1 process'}"
    run_dir.mkdir(parents=True, exist_ok=True)
    out, metrics_port = run_dir / "loadgen.json", free_port()
    argv = _argv(plan, url, out, metrics_port)
    locust = ManagedProcess("locust", argv, run_dir / "locust.log").start()
    scraper = Scraper(f"http://127.0.0.1:{metrics_port}/metrics")
    started = time.monotonic()
    try:
        deadline = started + plan.duration_s() + 30.0
        samples, stopped_early = _watch(locust, target_pid, scraper, deadline, label, say)
    finally:
        if locust.running():
            os.kill(locust.pid, signal.SIGTERM)
            _wait(locust, plan.timeout_s + 15.0)
        locust.stop()
        scraper.close()
    if not out.exists():
        raise RuntimeError(f"{label}: Locust wrote no series; see {run_dir / 'locust.log'}")
    document = json.loads(out.read_text())
    stages = stages_of(document, samples.generator, samples.target, plan.settle_s, plan.criteria)
    return GeneratorResult(plan, stages, stopped_early, time.monotonic() - started)


def _wait(process: ManagedProcess, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while process.running() and time.monotonic() < deadline:
        time.sleep(0.2)
