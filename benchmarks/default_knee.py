"""The default knee: what ``brink ramp`` finds with the stack's and the mix's defaults.

The stack starts with no extra settings; a probe of the default mix predicts the saturation
P (on a 2-core box the service's single worker runs out of CPU first). The ramp is a
breakpoint from 0.45 x P in steps of 0.06 x P, so it brackets a knee anywhere from about half
of P up to 1.8 x P. The probe also gives the CPU cost of one order, which (b) uses to spot
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
START_SHARE = 0.45
PEAK_SHARE = 0.6
"""brink's breakpoint adds 10% of the peak per step: 0.06 x P here."""


@dataclass(frozen=True)
class DefaultKnee:
    row: RampRow
    order_cpu_s: float | None
    """Service CPU per ``POST /orders`` at low load, from the probe."""


def run_default_knee(base_dir: Path, say: Say, step_s: float, timeout_s: float) -> DefaultKnee:
    """Probe a default stack, derive the ramp from its prediction, run it."""

    def derive(saturation: float) -> RampConfig:
        return RampConfig(
            profile="breakpoint",
            average_rps=round(START_SHARE * saturation, 1),
            peak_rps=round(PEAK_SHARE * saturation, 1),
            step_s=step_s,
            timeout_s=timeout_s,
        )

    mix = Mix(DEFAULT_WEIGHTS)
    row, result = probe_then_ramp("(a) default knee", {}, mix, derive, base_dir, say)
    order = [d.cpu_s for d in result.demands if d.route == ROUTE_OF_KIND["order"]]
    return DefaultKnee(row, order[0] if order and order[0] > 0 else None)
