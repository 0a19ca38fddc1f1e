"""What durability costs and what it buys: orders' knee durable vs not, and backend kills.

    .venv/bin/python -m benchmarks.durability                 # both parts, ~10 min
    .venv/bin/python -m benchmarks.durability --parts knee --rounds 3
    .venv/bin/python -m benchmarks.durability --parts kills --kills 24

(knee) The orders-only mix (``order=1``) on the default stack, once with the private Postgres
durable (the default: a COMMIT waits for its WAL flush) and once with ``--non-durable-postgres``
(fsync, synchronous_commit and full_page_writes off), side by side in alternating order per
round so a drift of the box favours neither. Each run probes its stack first and ramps a
breakpoint around the prediction (as ``benchmarks.default_knee``); the probe's DB hold per order
shows the flush, the knee what it costs the service.

(kills) One flat run of orders at a fraction of the durable knee while ``postgres.kill_backend``
SIGKILLs a client backend every ``--every-s`` seconds (Postgres then resets every backend and
recovers, as after an OOM kill). The order ledger counts acknowledged orders that are not in
the database afterwards. Goal: 0 lost over at least 20 kills.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from benchmarks.cli_kit import Progress, positive
from benchmarks.default_knee import breakpoint_around
from benchmarks.probed import probe_then_ramp
from benchmarks.ramps import RampRow
from loadtests.faults.spec import FaultSchedule
from loadtests.ledger import LedgerVerdict
from loadtests.mix import Mix, parse_weights
from loadtests.ramp import RampJob, run_job
from loadtests.runner import RampConfig

MIX = "order=1"
KILL_LOAD_SHARE = 0.5
"""The kill run's rate, as a share of the durable knee: served well between kills."""


def _knee_run(durable: bool, round_no: int, run_dir: Path, step_s: float, say: Progress) -> RampRow:
    derive = breakpoint_around(step_s, timeout_s=3.0, mix=MIX)
    label = f"{'durable' if durable else 'non-durable'} #{round_no}"
    folder = run_dir / f"knee-{round_no}-{'durable' if durable else 'fast'}"
    row, _ = probe_then_ramp(label, {}, Mix(parse_weights(MIX)), derive, folder, say, durable)
    return row


def measure_knees(rounds: int, run_dir: Path, step_s: float, say: Progress) -> dict[str, Any]:
    """Durable and non-durable ramps, alternating which goes first each round."""
    rows: dict[str, list[RampRow]] = {"durable": [], "non_durable": []}
    for round_no in range(1, rounds + 1):
        order = (True, False) if round_no % 2 else (False, True)
        for durable in order:
            row = _knee_run(durable, round_no, run_dir, step_s, say)
            rows["durable" if durable else "non_durable"].append(row)
    return {name: [_knee_figures(row) for row in found] for name, found in rows.items()}


def _knee_figures(row: RampRow) -> dict[str, Any]:
    return {
        "knee_rps": row.knee_rps,
        "knee_is_lower_bound": row.knee_is_lower_bound,
        "predicted_rps": row.predicted_rps,
        "bottleneck": row.bottleneck,
        "probe_hold_ms": row.probe_hold_ms,
        "knee_cpu": row.knee_cpu,
        "run_dir": row.run_dir,
    }


def measure_kills(
    kills: int, every_s: float, rate: float, run_dir: Path, say: Progress
) -> dict[str, Any]:
    """One flat run of orders with a backend killed every ``every_s``; the ledger's verdict."""
    steps = "; ".join(f"at {2 + i * every_s:g}s postgres.kill_backend" for i in range(kills))
    load_s = 2 + kills * every_s + 4
    config = RampConfig(
        profile="average",
        average_rps=rate,
        peak_rps=rate,
        step_s=load_s / 3,
        timeout_s=3.0,
        mix=MIX,
        abort_on_collapse=False,
    )
    job = RampJob(config, run_dir / "kills", probe=False, faults=FaultSchedule.parse(steps))
    outcome, code = run_job(job, lambda line: say(f"kills: {line}"))
    if outcome is None:
        return {"error": f"the run failed ({code.name})"}
    applied = [f for f in outcome.faults if f.kind == "apply"]
    ledger: LedgerVerdict | None = outcome.ledger
    return {
        "rate_rps": rate,
        "kills_asked": kills,
        "kills_done": sum(1 for f in applied if f.ok),
        "kill_errors": [f.error for f in applied if not f.ok],
        "recovery_s": [getattr(f, "recovery_s", None) for f in applied if f.ok],
        "ledger": None if ledger is None else ledger.to_dict(),
        "exit": code.name,
        "run_dir": str(job.run_dir),
    }


def _median(values: Sequence[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return statistics.median(known) if known else None


def format_knees(knees: dict[str, Any]) -> str:
    lines = ["(knee) orders only, default stack", f"{'':14}{'knee':>8}{'predicted':>11}"
             f"{'hold ms':>9}{'CPU':>6}  bottleneck"]  # fmt: skip
    for name, rows in knees.items():
        for row in rows:
            knee = "-" if row["knee_rps"] is None else f"{row['knee_rps']:.0f}"
            knee += "+" if row["knee_is_lower_bound"] else ""
            pred = "-" if row["predicted_rps"] is None else f"{row['predicted_rps']:.0f}"
            hold = "-" if row["probe_hold_ms"] is None else f"{row['probe_hold_ms']:.2f}"
            cpu = "-" if row["knee_cpu"] is None else f"{row['knee_cpu']:.2f}"
            lines.append(f"{name:14}{knee:>8}{pred:>11}{hold:>9}{cpu:>6}  {row['bottleneck']}")
    durable = _median([r["knee_rps"] for r in knees["durable"]])
    fast = _median([r["knee_rps"] for r in knees["non_durable"]])
    if durable and fast:
        lines.append(f"median knee durable / non-durable: {durable / fast:.3f}")
    return "\n".join(lines)


def format_kills(kills: dict[str, Any]) -> str:
    if "error" in kills:
        return f"(kills) {kills['error']}"
    ledger = kills["ledger"] or {}
    recovery = _median(kills["recovery_s"])
    shown = "-" if recovery is None else f"{recovery * 1000:.0f} ms"
    return (
        f"(kills) {kills['kills_done']} of {kills['kills_asked']} backend kills at"
        f" {kills['rate_rps']:g} orders/s; recovery median {shown}; ledger: "
        f"{ledger.get('acknowledged')} acknowledged, {ledger.get('lost')} lost,"
        f" {ledger.get('unexpected')} unexpected, {ledger.get('duplicates')} duplicate keys;"
        f" exit {kills['exit']}"
    )


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.durability", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--parts", nargs="+", choices=("knee", "kills"), default=["knee", "kills"])
    parser.add_argument("--rounds", type=positive(int), default=2, help="knee rounds (2)")
    parser.add_argument("--step-s", type=positive(float), default=8.0, help="ramp step, s (8)")
    parser.add_argument("--kills", type=positive(int), default=24, help="backend kills (24)")
    parser.add_argument("--every-s", type=positive(float), default=2.0, help="between kills (2)")
    parser.add_argument(
        "--kill-rps", type=positive(float), default=None,
        help=f"orders/s during the kills (default {KILL_LOAD_SHARE} x the durable knee, or 100)",
    )  # fmt: skip
    parser.add_argument("--run-dir", type=Path, help="where runs go (default: a temp dir)")
    parser.add_argument("--json", type=Path, help="write every figure here")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    say = Progress()
    run_dir = (args.run_dir or Path(tempfile.mkdtemp(prefix="brink-durability-"))).absolute()
    say(f"runs under {run_dir}")
    result: dict[str, Any] = {"config": {k: str(v) for k, v in vars(args).items()}}
    try:
        if "knee" in args.parts:
            result["knee"] = measure_knees(args.rounds, run_dir, args.step_s, say)
            print(format_knees(result["knee"]), flush=True)
        if "kills" in args.parts:
            knee = _median([r["knee_rps"] for r in result.get("knee", {}).get("durable", [])])
            rate = args.kill_rps or (round(KILL_LOAD_SHARE * knee) if knee else 100.0)
            result["kills"] = measure_kills(args.kills, args.every_s, rate, run_dir, say)
            print(format_kills(result["kills"]), flush=True)
    except KeyboardInterrupt:
        print("interrupted; everything started was stopped", file=sys.stderr)
        return 130
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2, default=str) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
