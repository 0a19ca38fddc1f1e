"""``python -m benchmarks.backend``: two backend figures from one command, measured with wrk.

(a) max req/s of ``GET /items/{id}`` with the HTTP metrics middleware on vs off;
(b) for each pool size, the predicted (pool / measured hold) and measured saturation of
``POST /orders``. Progress goes to stderr, the table to stdout, ``--json PATH`` saves it all.
Exit status: 0 measured, 1 some window had too many failures, 2 setup failed, 130 interrupted.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from benchmarks.cli_kit import Progress, positive
from benchmarks.report import Report, format_report, to_json
from benchmarks.scenarios import Bench, run_items, run_orders
from benchmarks.wrk_runner import WrkError, ensure_wrk
from loadtests.native.postgres import PostgresError, PrivatePostgres
from loadtests.native.process import ProcessFailed, free_port

EXIT_INVALID = 1
EXIT_SETUP = 2
EXIT_INTERRUPTED = 130


def _fraction(text: str) -> float:
    value = float(text)
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1, got {text}")
    return value


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.backend",
        description=(
            "Benchmark the demo service on 127.0.0.1 with wrk: (a) GET /items/{id} max req/s "
            "with HTTP metrics on vs off; (b) POST /orders saturation vs pool / measured hold."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    add = parser.add_argument
    add("--rounds", type=positive(int), default=3, help="rounds of every measurement")
    add("--seconds", type=positive(float), default=10.0, help="measured window per run")
    add("--warmup", type=positive(float), default=2.0, help="warm-up before each window, s")
    add("--pools", type=positive(int), nargs="+", default=[2, 8], help="pool sizes for (b)")
    add("--hold", type=positive(float), default=0.02, help="BRINK_DB__EXTRA_LATENCY_S for (b)")
    add("--connections", type=positive(int), default=32, help="wrk connections for (a)")
    add("--probe-orders", type=positive(int), default=40, help="sequential orders per probe")
    add("--timeout", type=positive(float), default=5.0, help="wrk --timeout per request, s")
    add("--max-failed", type=_fraction, default=0.01, help="failed fraction that voids a window")
    add("--only", choices=["items", "orders"], help="run only part (a) or (b)")
    add("--json", type=Path, metavar="PATH", help="also write the results as JSON here")
    return parser


def _config(args: argparse.Namespace) -> dict[str, object]:
    return {
        "rounds": args.rounds,
        "seconds": args.seconds,
        "warmup_s": args.warmup,
        "pools": args.pools,
        "hold_s": args.hold,
        "items_connections": args.connections,
        "probe_orders": args.probe_orders,
        "timeout_s": args.timeout,
        "max_failed": args.max_failed,
        "only": args.only,
        "cpus": os.cpu_count(),
        "host": "127.0.0.1",
    }


def _measure(args: argparse.Namespace, wrk: str, log_dir: Path, progress: Progress) -> Report:
    """Start the private Postgres, run the chosen parts, and always stop Postgres again."""
    postgres = PrivatePostgres(port=free_port())
    try:
        progress("starting a private Postgres")
        postgres.start()
        bench = Bench(
            wrk=wrk,
            dsn=postgres.dsn,
            log_dir=log_dir,
            seconds=args.seconds,
            warmup_s=args.warmup,
            timeout_s=args.timeout,
            max_failed=args.max_failed,
            progress=progress,
            postgres_pid=postgres.pid,
        )
        items = [] if args.only == "orders" else run_items(bench, args.rounds, args.connections)
        orders = (
            []
            if args.only == "items"
            else run_orders(bench, args.pools, args.rounds, args.hold, args.probe_orders)
        )
    finally:
        postgres.stop()
    return Report(_config(args), items, orders, time.monotonic() - progress.started)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark; print the table; return the exit status."""
    args = _parser().parse_args(argv)
    progress = Progress()
    log_dir = Path(tempfile.mkdtemp(prefix="brink-bench-"))
    try:
        report = _measure(args, ensure_wrk(), log_dir, progress)
    except KeyboardInterrupt:
        shutil.rmtree(log_dir, ignore_errors=True)
        print("interrupted; everything the benchmark started was stopped", file=sys.stderr)
        return EXIT_INTERRUPTED
    except (WrkError, PostgresError, ProcessFailed, RuntimeError, OSError) as exc:
        print(f"benchmark failed: {exc}\n(service logs: {log_dir})", file=sys.stderr)
        return EXIT_SETUP
    shutil.rmtree(log_dir, ignore_errors=True)
    print(format_report(report))
    if args.json is not None:
        try:
            args.json.parent.mkdir(parents=True, exist_ok=True)
            args.json.write_text(json.dumps(to_json(report), indent=2) + "\n")
        except OSError as exc:
            print(f"cannot write {args.json}: {exc}", file=sys.stderr)
            return EXIT_SETUP
        progress(f"wrote {args.json}")
    return EXIT_INVALID if report.invalid else 0


if __name__ == "__main__":
    sys.exit(main())
