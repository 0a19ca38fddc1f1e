"""One timed ``brink ramp`` (``run_job``) and the figures the harness keeps from it."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from loadtests.box_speed import speed_change
from loadtests.capacity import compare_knee
from loadtests.outcome import RampOutcome
from loadtests.profiles import ProfileParams, build_profile
from loadtests.ramp import RampJob, run_job
from loadtests.runner import RampConfig
from loadtests.samples import ServerSample

Say = Callable[[str], None]
_RUNNER_LINE = re.compile(r"^\[\s*\d+s,")
_RUNNER_LINE_EVERY_S = 5.0


def stage_rates(config: RampConfig) -> list[float]:
    """The stage rates the config's profile asks for (built by brink's own profile code)."""
    params = ProfileParams(
        config.average_rps,
        config.peak_rps,
        step_s=config.step_s,
        rps_cap=config.rps_cap,
        duration_cap_s=config.duration_cap_s,
    )
    return [stage.rps for stage in build_profile(config.profile, params).stages]


@dataclass(frozen=True)
class RampRow:
    """What one ramp found, and how long the whole job took."""

    label: str
    settings: dict[str, str]
    ramp: dict[str, Any]
    first_rps: float
    increment_rps: float
    predicted_rps: float | None
    bottleneck: str | None
    probe_hold_ms: float | None
    """The probe's DB hold per request of the mix (the model's demand on the pool)."""
    knee_hold_ms: float | None
    """The same, measured under load at the knee stage: pool busy seconds / requests."""
    knee_cpu: float | None
    """The service's CPU at the knee stage, in cores."""
    knee_rps: float | None
    knee_target_rps: float | None
    knee_is_lower_bound: bool
    stages: int
    wall_s: float
    verdict: str
    run_dir: str
    aborted: str | None = None
    explanation: str = ""
    notes: tuple[str, ...] = ()
    box_speed_change: float | None = None
    """How much slower the box ran in the knee stage than during the probe (-0.2: 20% faster;
    :mod:`loadtests.box_speed`), None where either was not read."""

    @property
    def error(self) -> float | None:
        """``(knee - predicted) / predicted``, None without both."""
        if self.knee_rps is None or self.predicted_rps is None or self.knee_is_lower_bound:
            return None
        return (self.knee_rps - self.predicted_rps) / self.predicted_rps

    @property
    def named_knee(self) -> bool:
        return self.knee_rps is not None and not self.knee_is_lower_bound


def quiet(say: Say, prefix: str) -> Say:
    """``say`` with a prefix, passing the runner's per-second lines only every few seconds."""
    last = 0.0

    def relay(line: str) -> None:
        nonlocal last
        if _RUNNER_LINE.match(line):
            if time.monotonic() - last < _RUNNER_LINE_EVERY_S:
                return
            last = time.monotonic()
        say(f"{prefix} {line}")

    return relay


def _probe_hold_ms(outcome: RampOutcome) -> float | None:
    if outcome.prediction is None:
        return None
    pool = [r.demand for r in outcome.prediction.resources if r.name == "db_pool"]
    return pool[0] * 1000 if pool else None


def _hold_ms(server: ServerSample | None) -> float | None:
    if server is None or server.throughput_rps <= 0:
        return None
    return server.pool_in_use / server.throughput_rps * 1000


def timed_ramp(label: str, job: RampJob, say: Say, started: float | None = None) -> RampRow:
    """Run ``job`` through brink's ``run_job``; wall time from ``started`` (default: now)."""
    started = time.monotonic() if started is None else started
    outcome, code = run_job(job, quiet(say, label))
    wall = time.monotonic() - started
    rates = stage_rates(job.config)
    base: dict[str, Any] = {
        "label": label,
        "settings": dict(job.settings),
        "ramp": job.config.to_dict(),
        "first_rps": rates[0],
        "increment_rps": rates[1] - rates[0] if len(rates) > 1 else 0.0,
        "wall_s": wall,
        "verdict": code.name,
        "run_dir": str(job.run_dir),
    }
    if outcome is None:
        return RampRow(
            **base, predicted_rps=None, bottleneck=None, probe_hold_ms=None, knee_hold_ms=None,
            knee_cpu=None, knee_rps=None, knee_target_rps=None, knee_is_lower_bound=False,
            stages=0,
        )  # fmt: skip
    prediction = outcome.prediction
    knee = outcome.tipping.knee_rps
    stage = outcome.knee_stage
    speeds = outcome.box_speeds()
    server = stage.server if stage else None
    if prediction is not None and knee is not None:
        check = compare_knee(prediction, knee)
        say(f"{label} knee {knee:.0f} req/s vs predicted {check.predicted:.0f}: "
            f"{check.error_ratio:+.1%}")  # fmt: skip
    return RampRow(
        **base,
        predicted_rps=prediction.saturation_rps if prediction else None,
        bottleneck=prediction.bottleneck if prediction else None,
        probe_hold_ms=_probe_hold_ms(outcome),
        knee_hold_ms=_hold_ms(server),
        knee_cpu=server.cpu_utilisation if server else None,
        knee_rps=knee,
        knee_target_rps=stage.target_rps if stage else None,
        knee_is_lower_bound=outcome.tipping.knee_is_lower_bound,
        stages=len(outcome.stages),
        aborted=outcome.aborted,
        explanation=outcome.tipping.explanation,
        box_speed_change=None if speeds is None else speed_change(*speeds),
    )
