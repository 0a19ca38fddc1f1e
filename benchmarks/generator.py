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
from dataclasses import dataclass
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


@dataclass(frozen=True)
class GeneratorPlan:
    """One generator ramp: breakpoint from ``start_rps``, +10% of it per ``step_s``."""

    workers: int
    start_rps: float
    step_s: float = 4.0
    settle_s: float = 1.0
    timeout_s: float = 2.0
    slice_rps: float = 10.0
    criteria: Criteria = Criteria()

    @property
    def rps_cap(self) -> float:
        return 3 * self.start_rps

    def duration_s(self) -> float:
        params = ProfileParams(
            self.start_rps, self.start_rps, step_s=self.step_s, rps_cap=self.rps_cap
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
    rate = str(plan.start_rps)
    argv = [
        sys.executable, "-m", "locust", "-f", str(BRINK_LOCUSTFILE), "--headless", "--host", host,
        "--load-profile", "breakpoint", "--average-rps", rate, "--peak-rps", rate,
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


def _dropping(history: list[Scrape]) -> bool:
    """True when dropped arrivals reached STOP_DROPPED_SHARE over the last STOP_WINDOW_S."""
    now = history[-1]
    old = next((s for s in reversed(history) if now.at - s.at >= STOP_WINDOW_S), None)
    if old is None:
        return False

    def delta(name: str) -> float:
        return now.total(name) - old.total(name)

    dropped = delta("brink_loadgen_dropped_total")
    sent = delta("brink_loadgen_arrivals_total") + dropped
    return sent > 0 and dropped / sent >= STOP_DROPPED_SHARE


def _progress(label: str, scrape: Scrape, previous: Scrape | None, cores: float) -> str:
    elapsed = scrape.at - previous.at if previous else 0.0
    offered = 0.0
    if previous is not None and elapsed > 0:
        offered = (
            scrape.total("brink_loadgen_arrivals_total")
            - previous.total("brink_loadgen_arrivals_total")
        ) / elapsed
    return (
        f"{label}: target {scrape.total('brink_loadgen_target_rps'):6.0f} req/s, "
        f"offered {offered:6.0f}/s, dropped so far "
        f"{scrape.total('brink_loadgen_dropped_total'):.0f}, generator CPU {cores:.2f} cores"
    )


def run_generator(
    plan: GeneratorPlan, url: str, target_pid: int, run_dir: Path, say: Say
) -> GeneratorResult:
    """Run one generator ramp against the canned target at ``url``."""
    label = f"(a) {plan.workers or 1} process{'es' if plan.workers else ''}"
    run_dir.mkdir(parents=True, exist_ok=True)
    out, metrics_port = run_dir / "loadgen.json", free_port()
    locust = ManagedProcess(
        "locust", _argv(plan, url, out, metrics_port), run_dir / "locust.log"
    ).start()
    scraper = Scraper(f"http://127.0.0.1:{metrics_port}/metrics")
    gen_cpu: list[cpu.CpuSample] = []
    target_cpu: list[cpu.CpuSample] = []
    history: list[Scrape] = []
    started = time.monotonic()
    deadline = started + plan.duration_s() + 30.0
    stopped_early, last_said = False, 0.0
    try:
        while locust.running() and time.monotonic() < deadline:
            gen_cpu.append(_wall_sample(locust.pid, tree=True))
            target_cpu.append(_wall_sample(target_pid, tree=False))
            scrape = scraper.scrape()
            if scrape is not None:
                history.append(scrape)
                if time.monotonic() - last_said >= 4.0 and len(gen_cpu) > 2:
                    cores = gen_cpu[-1].usage_since(gen_cpu[-3]).tree_cores
                    say(_progress(label, scrape, history[-5] if len(history) > 4 else None, cores))
                    last_said = time.monotonic()
                if not stopped_early and _dropping(history):
                    say(f"{label}: the generator is dropping arrivals: ending the ramp")
                    os.kill(locust.pid, signal.SIGTERM)  # the master only: it stops the workers
                    stopped_early = True
            time.sleep(0.5)
    finally:
        if locust.running():
            os.kill(locust.pid, signal.SIGTERM)
            _wait(locust, plan.timeout_s + 15.0)
        locust.stop()
        scraper.close()
    if not out.exists():
        raise RuntimeError(f"{label}: Locust wrote no series; see {run_dir / 'locust.log'}")
    document = json.loads(out.read_text())
    stages = stages_of(document, gen_cpu, target_cpu, plan.settle_s, plan.criteria)
    return GeneratorResult(plan, stages, stopped_early, time.monotonic() - started)


def _wait(process: ManagedProcess, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while process.running() and time.monotonic() < deadline:
        time.sleep(0.2)
