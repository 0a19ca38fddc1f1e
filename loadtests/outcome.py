"""Everything one ramp produced, in one value: what the reports are written from.

The runner gathers samples, the pure analysis judges them, and :class:`RampOutcome` carries
both to :mod:`loadtests.report`. ``to_dict`` is the JSON report's content; ``brink compare``
reads the summary back with :func:`summary_from_report`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from loadtests.box_speed import BoxSpeed
from loadtests.capacity import Prediction
from loadtests.exit_codes import ExitCode
from loadtests.faults.runner import AppliedFault
from loadtests.ledger import LedgerVerdict
from loadtests.probe import ProbeResult
from loadtests.samples import StageSample
from loadtests.summary import RunSummary
from loadtests.thresholds import ThresholdResult
from loadtests.tipping import TippingPoint


@dataclass(frozen=True)
class RampOutcome:
    config: dict[str, Any]
    """The ramp's configuration: profile, rates, SLO, mix, target, stack settings."""
    stages: tuple[StageSample, ...]
    tipping: TippingPoint
    summary: RunSummary
    thresholds: tuple[ThresholdResult, ...]
    exit_code: ExitCode
    started_at: float
    finished_at: float
    prediction: Prediction | None = None
    probe: ProbeResult | None = None
    aborted: str | None = None
    """Why the run stopped early (collapse, watchdog), or None."""
    ledger: LedgerVerdict | None = None
    """The order ledger checked against the database; None when brink did not know it."""
    faults: tuple[AppliedFault, ...] = ()
    """What the fault schedule did during the run (``brink ramp --fault``), in order."""

    @property
    def knee_stage(self) -> StageSample | None:
        """The stage the knee was found in, None without a knee."""
        return next((s for s in self.stages if s.index == self.tipping.knee_index), None)

    def box_speeds(self) -> tuple[BoxSpeed, BoxSpeed] | None:
        """The box's speed during the probe and in the knee stage, when both were read."""
        probe, knee = self.probe.box_speed if self.probe else None, self.knee_stage
        if probe is None or knee is None or knee.box_speed_ms is None:
            return None
        return probe, BoxSpeed(knee.box_speed_ms)

    def to_dict(self) -> dict[str, Any]:
        prediction = None
        if self.prediction is not None:
            prediction = {
                "saturation_rps": self.prediction.saturation_rps,
                "bottleneck": self.prediction.bottleneck,
                "explanation": self.prediction.explanation,
                "resources": [dataclasses.asdict(r) for r in self.prediction.resources],
            }
        return {
            "config": self.config,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "aborted": self.aborted,
            "exit_code": int(self.exit_code),
            "verdict": self.exit_code.name,
            "summary": self.summary.to_dict(),
            "tipping": dataclasses.asdict(self.tipping),
            "prediction": prediction,
            "probe": self.probe.to_dict() if self.probe else None,
            "ledger": self.ledger.to_dict() if self.ledger else None,
            "faults": [dataclasses.asdict(fault) for fault in self.faults],
            "thresholds": [
                {
                    "threshold": str(result.threshold),
                    "passed": result.passed,
                    "actual": result.actual,
                    "message": result.message,
                }
                for result in self.thresholds
            ],
            "stages": [stage.to_dict() for stage in self.stages],
        }


def summary_from_report(report: dict[str, Any]) -> RunSummary:
    """The :class:`RunSummary` of a ``report.json`` written by an earlier run."""
    return RunSummary.from_dict(report["summary"])


def knee_box_speed(report: dict[str, Any]) -> BoxSpeed | None:
    """The box's speed in the knee stage of a ``report.json`` (None: no knee, not read, or not
    in the shape brink writes: the speed is a note, it never fails a comparison)."""
    tipping, stages = report.get("tipping"), report.get("stages")
    if not isinstance(tipping, dict) or not isinstance(stages, list):
        return None
    index = tipping.get("knee_index")
    stage = next((s for s in stages if isinstance(s, dict) and s.get("index") == index), None)
    speed = None if stage is None else stage.get("box_speed_ms")
    if not isinstance(speed, list) or not all(isinstance(ms, int | float) for ms in speed):
        return None
    return BoxSpeed(tuple(speed)) if speed else None
