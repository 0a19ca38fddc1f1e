"""``python -m benchmarks.harness``: the load harness measured against itself, in one command.

(a) the load generator's max offered rate (one process, and ``--workers N``) against a canned
target, over the knee ``brink ramp`` finds with default settings; (b) predicted vs measured
knee over pool sizes and DB holds; (c) the wall time of a quick ramp that names the knee.
Progress goes to stderr, the table to stdout, ``--json PATH`` saves every figure.
Exit status: 0 measured, 1 some figure missing, 2 a part could not run, 130 interrupted.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import sys
import tempfile
import time
from collections.abc import Sequence
from importlib.metadata import version
from pathlib import Path
from types import FrameType

from benchmarks.cli_kit import Progress, positive
from benchmarks.contention import CpuWatch
from benchmarks.default_knee import run_default_knee
from benchmarks.generator import GeneratorPlan, canned_target, run_generator
from benchmarks.generator_stages import Criteria
from benchmarks.harness_report import HarnessReport, format_report, to_json
from benchmarks.knees import DEFAULT_CONFIGS, KneePlan, PoolConfig, run_knees
from benchmarks.quick import run_quick
from loadtests.native.process import ProcessFailed
from loadtests.native.stack import StackError
from loadtests.pacing import ARRIVALS

EXIT_MISSING = 1
EXIT_SETUP = 2
EXIT_INTERRUPTED = 130
PARTS = ("a", "b", "c")
SETUP_ERRORS = (StackError, ProcessFailed, RuntimeError, OSError)
"""A part that raises one of these is recorded as stopped; the other parts still run."""


def _pool_config(text: str) -> str:
    PoolConfig.parse(text)  # argparse reports its ArgumentTypeError
    return text


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.harness",
        description=(
            "Measure brink's load harness on 127.0.0.1: (a) the generator's max offered rate "
            "vs the default knee, (b) predicted vs measured knee over pool sizes and DB holds, "
            "(c) the wall time of a quick ramp. Defaults take about 10 minutes."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    add = parser.add_argument
    add("--parts", nargs="+", choices=PARTS, default=list(PARTS), help="which parts to run")
    add("--workers", type=positive(int), default=2, help="(a) Locust --processes for run 2")
    add("--gen-start", type=positive(float), default=1200.0, help="(a) first rate, req/s")
    add("--gen-step", type=positive(float), default=150.0, help="(a) req/s added per step")
    add("--gen-step-s", type=positive(float), default=4.0, help="(a) seconds per step")
    add("--max-p95-ms", type=positive(float), default=50.0, help="(a) client p95 to keep up")
    add("--default-step-s", type=positive(float), default=5.0, help="(a) default-knee step, s")
    add(
        "--configs",
        nargs="+",
        type=_pool_config,
        default=list(DEFAULT_CONFIGS),
        metavar="POOL/HOLD_MS",
        help="(b) pool sizes and DB holds, e.g. 4/40",
    )
    add("--knee-step-s", type=positive(float), default=5.0, help="(b) seconds per step")
    add(
        "--knee-start",
        type=positive(float),
        default=0.5,
        help="(b) first stage as a share of pool/hold (of the probe's prediction if CPU-bound)",
    )
    add("--arrivals", choices=ARRIVALS, default="even", help="(b) gaps between arrivals")
    add("--quick-repeats", type=positive(int), default=3, help="(c) how many quick ramps")
    add("--run-dir", type=Path, help="run folders; None: a new temp dir")
    add("--json", type=Path, metavar="PATH", help="also write the results as JSON here")
    return parser


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def _part_a(args: argparse.Namespace, report: HarnessReport, run_dir: Path, say: Progress) -> None:
    criteria = Criteria(max_p95_s=args.max_p95_ms / 1000)
    with canned_target(run_dir) as (url, pid):
        say(f"(a) canned target at {url}")
        single = GeneratorPlan(0, args.gen_start, args.gen_step, args.gen_step_s, criteria=criteria)
        report.generators.append(run_generator(single, url, pid, run_dir / "one-process", say))
        top = report.generators[0].max_stage
        base = top.target_rps if top else args.gen_start  # from below one process's max
        multi = GeneratorPlan(
            args.workers, round(0.8 * base, -1), round(0.1 * base, -1), args.gen_step_s,
            criteria=criteria,
        )  # fmt: skip
        report.generators.append(run_generator(multi, url, pid, run_dir / "workers", say))
    knee = run_default_knee(run_dir / "default-knee", say, args.default_step_s, timeout_s=3.0)
    report.default = knee.row
    report.order_cpu_s = knee.order_cpu_s


def _measure(args: argparse.Namespace, report: HarnessReport, run_dir: Path, say: Progress) -> None:
    watch = CpuWatch().start()
    try:
        for part in args.parts:
            started = time.monotonic()
            try:
                _part(part, args, report, run_dir / part, say)
            except SETUP_ERRORS as exc:
                report.failures.append(f"({part}) stopped: {str(exc).splitlines()[0]}")
                say(f"({part}) stopped: {exc}\n(logs under {run_dir / part})")
            report.contention[f"({part})"] = watch.between(started, time.monotonic())
    finally:
        watch.stop()


def _part(
    part: str, args: argparse.Namespace, report: HarnessReport, run_dir: Path, say: Progress
) -> None:
    if part == "a":
        _part_a(args, report, run_dir, say)
    elif part == "b":
        plan = KneePlan(
            step_s=args.knee_step_s,
            start_share=args.knee_start,
            arrivals=args.arrivals,
            order_cpu_s=report.order_cpu_s,
        )
        configs = [PoolConfig.parse(text) for text in args.configs]
        report.knees.extend(run_knees(configs, plan, run_dir, say))
    else:
        report.quick.extend(run_quick(args.quick_repeats, run_dir, say))


def _config(args: argparse.Namespace, run_dir: Path) -> dict[str, object]:
    return {
        "parts": args.parts,
        "workers": args.workers,
        "gen_start_rps": args.gen_start,
        "gen_step_rps": args.gen_step,
        "gen_step_s": args.gen_step_s,
        "max_p95_ms": args.max_p95_ms,
        "default_step_s": args.default_step_s,
        "configs": args.configs,
        "knee_step_s": args.knee_step_s,
        "knee_start": args.knee_start,
        "arrivals": args.arrivals,
        "quick_repeats": args.quick_repeats,
        "run_dir": str(run_dir),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "locust": version("locust"),
        "load_average_at_start": os.getloadavg(),
    }


def main(argv: Sequence[str] | None = None) -> int:
    """Run the harness; print the table; return the exit status."""
    args = _parser().parse_args(argv)
    if args.gen_step * 10 < args.gen_start:
        _parser().error("--gen-step must be at least a tenth of --gen-start (brink's breakpoint)")
    say = Progress()
    run_dir = (args.run_dir or Path(tempfile.mkdtemp(prefix="brink-harness-"))).absolute()
    report = HarnessReport(_config(args, run_dir))
    signal.signal(signal.SIGTERM, _interrupt)
    say(f"run folders under {run_dir}; load average {os.getloadavg()[0]:.2f}")
    try:
        _measure(args, report, run_dir, say)
    except KeyboardInterrupt:
        print("interrupted; everything the harness started was stopped", file=sys.stderr)
        return EXIT_INTERRUPTED
    report.wall_s = time.monotonic() - say.started
    print(format_report(report))
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(to_json(report), indent=2) + "\n")
        say(f"wrote {args.json}")
    if report.failures:
        return EXIT_SETUP
    return EXIT_MISSING if report.missing else 0


if __name__ == "__main__":
    sys.exit(main())
