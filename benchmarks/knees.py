"""(b) Predicted vs measured knee: ``POST /orders`` ramps over pool sizes and DB holds.

Each configuration is one ``run_job`` with the stack settings ``--set`` would give
(``DB__POOL_MAX`` = ``DB__POOL_MIN`` = pool, ``DB__EXTRA_LATENCY_S`` = hold). Its breakpoint
profile is derived from the theoretical saturation, pool / hold: the first stage at half of it
and, since brink adds 10% of the peak per step and the peak is that same first rate, steps of
5% of it; the ceiling (3 x peak) is 1.5 x. When pool / hold is above what the service's single
worker can serve (1 / CPU per order from the default probe, else :data:`CPU_BOUND_RPS`), no
formula gives the knee: the stack is probed first and the ramp derived from the prediction.
Each row notes the probe's order hold at rest and in its loaded stage (from the ramp's report).
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from benchmarks.probed import probe_then_ramp
from benchmarks.ramps import RampRow, stage_rates, timed_ramp
from loadtests.capacity import Capacities, RouteDemand, predict
from loadtests.mix import Mix, parse_weights
from loadtests.profiles import DEFAULT_RPS_CAP
from loadtests.ramp import RampJob
from loadtests.runner import RampConfig

Say = Callable[[str], None]
DEFAULT_CONFIGS = ("2/10", "4/40", "8/30", "16/50", "20/20", "16/5")
"""Four DB-bound configurations, then two the service's CPU limits on a 2-core box (pool / hold
= 1,000 and 3,200 req/s): pools from 2 to 20, holds from 5 to 50 ms."""
CPU_BOUND_RPS = 600.0
"""Above this pool / hold, without a probe's CPU figure, a configuration counts as CPU-bound."""
MIX = "order=1"


@dataclass(frozen=True)
class PoolConfig:
    """A pool size and the DB hold each order adds (``pg_sleep`` in its transaction)."""

    pool: int
    hold_ms: float

    @classmethod
    def parse(cls, text: str) -> PoolConfig:
        """``"4/40"``: a pool of 4 and a 40 ms hold (argparse type)."""
        pool, _, hold = text.partition("/")
        try:
            config = cls(int(pool), float(hold))
        except ValueError:
            config = cls(0, 0.0)
        if config.pool < 1 or not 0 < config.hold_ms <= 10_000:
            raise argparse.ArgumentTypeError(f"expected POOL/HOLD_MS such as 4/40, got {text!r}")
        return config

    @property
    def label(self) -> str:
        return f"pool {self.pool} / {self.hold_ms:g} ms"

    @property
    def theoretical_rps(self) -> float:
        return self.pool / (self.hold_ms / 1000)

    def settings(self) -> dict[str, str]:
        return {
            "BRINK_DB__POOL_MAX": str(self.pool),
            "BRINK_DB__POOL_MIN": str(self.pool),
            "BRINK_DB__EXTRA_LATENCY_S": f"{self.hold_ms / 1000:g}",
        }


@dataclass(frozen=True)
class KneePlan:
    """How every (b) ramp runs."""

    step_s: float = 5.0
    start_share: float = 0.5
    """First stage at this share of the expected saturation; each step adds a tenth of it."""
    slo_s: float = 0.5
    timeout_s: float = 3.0
    arrivals: str = "even"
    order_cpu_s: float | None = None
    """Service CPU per order from a probe, to cap the expected rate; None: pool / hold only."""

    def cpu_bound(self, config: PoolConfig) -> bool:
        """Would the service's CPU run out before the pool does?"""
        cpu_rps = 1 / self.order_cpu_s if self.order_cpu_s else CPU_BOUND_RPS
        return config.theoretical_rps > cpu_rps

    def ramp(self, expected_rps: float) -> RampConfig:
        first = round(self.start_share * expected_rps, 1)
        return RampConfig(
            profile="breakpoint",
            average_rps=first,
            peak_rps=first,
            step_s=self.step_s,
            slo_s=self.slo_s,
            timeout_s=self.timeout_s,
            mix=MIX,
            arrivals=self.arrivals,
            rps_cap=max(DEFAULT_RPS_CAP, 3 * first),
            seed=1,
        )


def run_knees(
    configs: Sequence[PoolConfig], plan: KneePlan, base_dir: Path, say: Say
) -> Iterator[RampRow]:
    """One ramp per configuration, in order; each row as soon as it is measured."""
    for number, config in enumerate(configs, start=1):
        label = f"(b) {config.label}"
        run_dir = base_dir / f"{number}-pool{config.pool}-hold{config.hold_ms:g}ms"
        if plan.cpu_bound(config):
            mix = Mix(parse_weights(MIX))
            row, _ = probe_then_ramp(label, config.settings(), mix, plan.ramp, run_dir, say)
            row = replace(
                row, notes=("CPU-bound: ramp from a probe's prediction, not pool / hold",)
            )
            run_dir = run_dir / "ramp"
        else:
            ramp = plan.ramp(config.theoretical_rps)
            rates = stage_rates(ramp)
            say(
                f"{label}: pool / hold = {config.theoretical_rps:.0f} req/s; stages {rates[0]:g},"
                f" {rates[1]:g} ... {rates[-1]:g} req/s, {ramp.step_s:g} s each"
            )
            job = RampJob(config=ramp, run_dir=run_dir, settings=config.settings())
            row = timed_ramp(label, job, say)
        yield replace(row, notes=(*row.notes, *probe_notes(run_dir / "report.json")))


def probe_notes(report: Path) -> tuple[str, ...]:
    """The probe's order hold at rest and in its loaded stage, from the ramp's ``report.json``,
    and what the model would have predicted from the hold at rest alone (for an A/B of the two
    on the same run). The row's ``hold`` is the model's hold at saturation, fitted through both.
    """
    try:
        data = json.loads(report.read_text())
    except (OSError, ValueError):
        return ()
    probe, knee = data.get("probe") or {}, (data.get("summary") or {}).get("knee_rps")
    loaded = probe.get("loaded")
    at_rest = [d["db_hold_s"] for d in probe.get("demands", []) if d["route"] == "/orders"]
    if not at_rest or not loaded or "/orders" not in loaded["db_hold_s"]:
        return ()
    demands = [RouteDemand(**{**d, "db_hold_growth_s": 0.0}) for d in probe["demands"]]
    rest_rps = predict(demands, Capacities(**probe["capacities"])).saturation_rps
    error = "" if knee is None else f", knee {(knee - rest_rps) / rest_rps:+.1%} from it"
    full = loaded.get("full")
    kept = (
        ""
        if not full
        else f"; kept full: {full['rate_rps']:.0f} req/s, CPU {full['cpu_s'] * 1e3:.2f} ms per"
        f" request, {full['rate_rps'] * full['cpu_s']:.2f} of a core, held back by"
        f" {full['held_back_by']}"
    )
    return (
        f"probe: hold {at_rest[0] * 1e3:.2f} ms at rest, {loaded['db_hold_s']['/orders'] * 1e3:.2f}"
        f" ms at {loaded['rate_rps']:.0f} req/s (CPU {loaded['cpu_s'] * 1e3:.2f} ms per request,"
        f" loop {loaded['loop_utilisation']:.0%} busy){kept}; the hold at rest alone predicts"
        f" {rest_rps:.0f} req/s{error}",
    )
