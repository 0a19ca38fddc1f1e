"""End to end: a ramp through the native stack while Postgres restarts, and the ledger holds.

``run_job`` drives real Locust (the order ledger written by the generator itself) against a
native stack this test started, so a thread can restart that stack's Postgres mid-ramp; the
stack's DSN goes in ``RampJob.database_dsn``, as for any target. The report must carry the
ledger verdict: nothing lost, nothing unexpected, no duplicate, stock adds up.
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from loadtests.exit_codes import ExitCode
from loadtests.ledger import LEDGER_GLOB, LedgerVerdict, read_ledger
from loadtests.native.process import free_port
from loadtests.native.stack import NativeStack, StackConfig
from loadtests.ramp import RampJob, run_job
from loadtests.runner import RampConfig

pytestmark = pytest.mark.e2e

RESTART_AFTER_S = 5.0  # into the 15 s of load: mid-ramp


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[NativeStack]:
    config = StackConfig(
        service_port=free_port(),
        slow_api_port=free_port(),
        pg_port=free_port(),
        run_dir=tmp_path / "stack",
    )
    with NativeStack(config) as native:
        yield native


def _restart_once_load_flows(stack: NativeStack, run_dir: Path, done: list[float]) -> None:
    deadline = time.monotonic() + 60.0
    while not list(run_dir.glob(LEDGER_GLOB)) and time.monotonic() < deadline:
        threading.Event().wait(0.1)  # poll for the generator's first order
    threading.Event().wait(RESTART_AFTER_S)
    stack.postgres.restart("fast")
    done.append(time.time())


def test_a_postgres_restart_mid_ramp_loses_no_order(stack: NativeStack, tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    config = RampConfig(
        profile="average", average_rps=30, step_s=5, timeout_s=3, mix="order=3,item=1", seed=3
    )
    job = RampJob(
        config,
        run_dir,
        target=stack.urls["service"],
        slow_api=stack.urls["slow_api"],
        probe=False,
        database_dsn=stack.postgres.dsn,
    )
    restarted: list[float] = []
    fault = threading.Thread(target=_restart_once_load_flows, args=(stack, run_dir, restarted))
    fault.start()
    outcome, code = run_job(job, say=lambda line: None)
    fault.join()

    assert outcome is not None
    assert restarted, "Postgres was never restarted"
    events, torn = read_ledger(run_dir)
    sent_at = [event.t for event in events if event.event == "sent"]
    assert min(sent_at) < restarted[0] < max(sent_at)  # the restart came mid-ramp
    assert torn == 0

    report = json.loads((run_dir / "report.json").read_text())
    verdict = LedgerVerdict.from_dict(report["ledger"])
    assert verdict == outcome.ledger
    answers = Counter(f"{e.event} {e.status}" for e in events if e.event != "sent")
    print(f"\n[e2e postgres restart mid-ramp] {verdict.explanation}; exit {code.name}")
    print(f"answers by outcome and status: {dict(sorted(answers.items()))}")
    assert verdict.ok, verdict.explanation
    assert (verdict.lost, verdict.unexpected, verdict.duplicates) == (0, 0, 0)
    assert verdict.acknowledged > 0.8 * verdict.sent
    assert verdict.items_checked == 1_000  # the seeded catalogue the mix orders from
    assert code is not ExitCode.RUN_FAILED
    assert "## Ledger" in (run_dir / "summary.md").read_text()
    assert "Ledger" in (run_dir / "report.html").read_text()
