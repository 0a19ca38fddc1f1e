"""End to end: ``brink ramp`` with Postgres restarted, a backend killed and Postgres killed
mid-ramp, on the default (durable) stack; the ledger holds.

``run_job`` starts the native stack, drives real Locust (the order ledger written by the
generator itself) and runs a fault schedule (``--fault``) against the stack's own Postgres: a
fast restart, one client backend SIGKILLed (Postgres then resets every connection and recovers,
as after an OOM kill), then a kill of the postmaster followed by a start. The report must carry
the faults it applied and the ledger verdict: nothing lost, nothing unexpected, no duplicate,
stock adds up.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from loadtests.exit_codes import ExitCode
from loadtests.faults.spec import FaultSchedule
from loadtests.ledger import LedgerVerdict, read_ledger
from loadtests.ramp import RampJob, run_job
from loadtests.runner import RampConfig

pytestmark = pytest.mark.e2e

SCHEDULE = "at 5s postgres.restart; at 8s postgres.kill_backend; at 11s postgres.kill"
"""Timed from the generator's start (load flows ~2 s later): both land within 18 s of load."""


def test_postgres_restart_backend_kill_and_kill_mid_ramp_lose_no_order(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    config = RampConfig(
        profile="average", average_rps=30, step_s=6, timeout_s=3, mix="order=3,item=1", seed=3
    )
    job = RampJob(config, run_dir, probe=False, faults=FaultSchedule.parse(SCHEDULE))
    lines: list[str] = []
    outcome, code = run_job(job, say=lines.append)

    assert outcome is not None, "\n".join(lines[-20:])
    applied = [(fault.action, fault.ok) for fault in outcome.faults]
    expected = ["postgres.restart", "postgres.kill_backend", "postgres.kill"]
    assert applied == [(action, True) for action in expected], applied
    recovered = outcome.faults[1].recovery_s
    assert recovered is not None
    assert 0 < recovered < 10
    events, torn = read_ledger(run_dir)
    sent_at = [event.t for event in events if event.event == "sent"]
    assert all(min(sent_at) < fault.wall_time < max(sent_at) for fault in outcome.faults)
    assert torn == 0

    report = json.loads((run_dir / "report.json").read_text())
    assert [fault["action"] for fault in report["faults"]] == expected
    verdict = LedgerVerdict.from_dict(report["ledger"])
    assert verdict == outcome.ledger
    answers = Counter(f"{e.event} {e.status}" for e in events if e.event != "sent")
    print(f"\n[e2e postgres restart, backend kill, kill] {verdict.explanation}; exit {code.name}")
    print(f"answers by outcome and status: {dict(sorted(answers.items()))}")
    assert verdict.ok, verdict.explanation
    assert (verdict.lost, verdict.unexpected, verdict.duplicates) == (0, 0, 0)
    assert verdict.acknowledged > 0.6 * verdict.sent
    assert verdict.items_checked == 1_000  # the seeded catalogue the mix orders from
    assert code not in (ExitCode.RUN_FAILED, ExitCode.DATA_LOST)
    summary = (run_dir / "summary.md").read_text()
    assert "## Ledger" in summary
    assert "## Faults" in summary
    assert "ok, recovered in" in summary  # the backend kill's recovery time
    assert "postgres.kill" in (run_dir / "report.html").read_text()
