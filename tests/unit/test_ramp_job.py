"""``brink ramp``'s job decisions that need no stack: rates, refusals."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from loadtests.capacity import Prediction, ResourceLimit
from loadtests.exit_codes import ExitCode
from loadtests.faults.spec import FaultSchedule
from loadtests.ramp import (
    FaultsRefused,
    RampJob,
    _rates,
    _refuse_crash_without_durability,
    _verdict,
)
from loadtests.runner import RampConfig, RampRun
from loadtests.tipping import find_tipping_point
from tests.unit.synthetic import SLO_S, hockey


def test_a_crash_fault_on_a_non_durable_postgres_is_refused_before_the_run() -> None:
    faults = FaultSchedule.parse("at 5s postgres.kill")
    config = RampConfig(profile="average", average_rps=10, step_s=5)
    job = RampJob(config, Path("unused"), faults=faults, durable_postgres=False)
    with pytest.raises(FaultsRefused, match="non-durable"):
        _refuse_crash_without_durability(job)
    _refuse_crash_without_durability(replace(job, durable_postgres=True))
    restart = FaultSchedule.parse("at 5s postgres.restart")  # a clean shutdown flushes the WAL
    _refuse_crash_without_durability(replace(job, faults=restart))


def test_rates_come_from_the_prediction_only_where_the_user_gave_none() -> None:
    pool = ResourceLimit("db_pool", 4.0, "connections", 0.01, "s", max_rps=400.0)
    prediction = Prediction((pool,))
    config = RampConfig(profile="peak", average_rps=50, peak_rps=100)
    lines: list[str] = []
    derived = _rates(RampJob(config, Path("unused"), rates_from_prediction=True), prediction,
                     lines.append)  # fmt: skip
    assert (derived.average_rps, derived.peak_rps) == (200.0, 400.0)
    assert "rates from the prediction" in lines[-1]
    given = RampJob(config, Path("unused"))
    assert _rates(given, prediction, lines.append) is config
    unprobed = RampJob(config, Path("unused"), rates_from_prediction=True)
    assert _rates(unprobed, None, lines.append) is config
    assert "no prediction" in lines[-1]


def test_a_collapse_below_a_derived_peak_is_the_finding_not_a_failure() -> None:
    stages = hockey()
    run = RampRun(stages, [], 0)
    config = RampConfig(profile="peak", average_rps=50, peak_rps=10_000)  # past every stage
    tipping = find_tipping_point(stages, SLO_S)
    assert tipping.collapse_index is not None
    assert _verdict(run, tipping, False, config) is ExitCode.ABORTED_ON_COLLAPSE
    assert _verdict(run, tipping, False, config, declared_peak=False) is ExitCode.OK
