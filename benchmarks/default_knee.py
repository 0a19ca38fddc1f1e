"""The default knee: what ``brink ramp`` finds with the stack's and the mix's defaults.

The stack starts with no extra settings; a probe of the default mix predicts the saturation
P (on a 2-core box the service's single worker runs out of CPU first). That first probe meets
a cold service: its full-loop burst read 0.63-1.05 x (median 0.9 x) what a second probe on the
same stack read seconds later (at worst 731 against 1,108 req/s), and the knee came at up to
1.8 x P. So the ramp is a
breakpoint from 0.6 x P in steps of 0.075 x P: it brackets a knee from 0.6 x P up to
2.25 x P. The probe also gives the CPU cost of one order, which (b) uses to spot
configurations the CPU would limit.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from benchmarks.probed import probe_then_ramp
from benchmarks.ramps import RampRow
from loadtests.mix import DEFAULT_WEIGHTS, Mix
from loadtests.probe import ROUTE_OF_KIND
from loadtests.runner import RampConfig

Say = Callable[[str], None]
START_SHARE = 0.6
PEAK_SHARE = 0.75
"""brink's breakpoint adds 10% of the peak per step: 0.075 x P here."""


@dataclass(frozen=True)
class DefaultKnee:
    row: RampRow
    order_cpu_s: float | None
    """Service CPU per ``POST /orders`` at low load, from the probe."""


def breakpoint_around(
    step_s: float, timeout_s: float, mix: str = RampConfig.mix
) -> Callable[[float], RampConfig]:
    """The ramp a predicted saturation P gives: a breakpoint from 0.6 x P in 0.075 x P steps."""

    def derive(saturation: float) -> RampConfig:
        return RampConfig(
            profile="breakpoint",
            average_rps=round(START_SHARE * saturation, 1),
            peak_rps=round(PEAK_SHARE * saturation, 1),
            step_s=step_s,
            timeout_s=timeout_s,
            mix=mix,
        )

    return derive


def run_default_knee(base_dir: Path, say: Say, step_s: float, timeout_s: float) -> DefaultKnee:
    """Probe a default stack, derive the ramp from its prediction, run it."""
    derive = breakpoint_around(step_s, timeout_s)

    mix = Mix(DEFAULT_WEIGHTS)
    row, result = probe_then_ramp("(a) default knee", {}, mix, derive, base_dir, say)
    order = [d.cpu_s for d in result.demands if d.route == ROUTE_OF_KIND["order"]]
    return DefaultKnee(row, order[0] if order and order[0] > 0 else None)
