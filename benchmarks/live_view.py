"""What the live view costs the knee: the default ramp with and without it, side by side.

    .venv/bin/python -m benchmarks.live_view                  # 2 rounds, ~10 min
    .venv/bin/python -m benchmarks.live_view --rounds 3 --json runs/live-view.json

The live tab in Locust's web UI (:mod:`loadtests.web_ui`) scrapes the service's ``/metrics``
every second while someone watches and turns the last scrapes into rows each time the page
polls (every 2 s). Here a thread does exactly that work (:class:`Watcher`: the same
:class:`~loadtests.scrape.Scraper` and :func:`~loadtests.live_view.live_rows`) in the
benchmark's process instead of Locust's master: on this box every process shares the same
two cores, so the service pays the same. Each round probes a fresh default stack, ramps a
breakpoint around the prediction (as ``benchmarks.default_knee``) once with the watcher and once
without, the order alternating per round.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import closing, contextmanager, nullcontext
from pathlib import Path
from typing import Any

from benchmarks.cli_kit import Progress, positive
from benchmarks.default_knee import breakpoint_around
from benchmarks.probed import probe_then_ramp
from loadtests.live_view import live_rows
from loadtests.mix import DEFAULT_WEIGHTS, Mix
from loadtests.native.process import free_port
from loadtests.native.stack import NativeStack, StackConfig
from loadtests.scrape import Scraper

SCRAPE_EVERY_S = 1.0
ROWS_EVERY = 2
"""The page polls every 2 s: rows are computed at every other scrape."""
KEEP_SCRAPES = 10


class Watcher:
    """The live tab's work on the service: a scrape a second, rows every other one."""

    def __init__(self, service: str) -> None:
        self._scraper = Scraper(service + "/metrics", 2.0)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="live-view-watcher", daemon=True)
        self.scrapes = 0

    def _run(self) -> None:
        while not self._stop.wait(SCRAPE_EVERY_S):
            if self._scraper.scrape() is not None:
                self.scrapes += 1
            recent = self._scraper.scrapes[-KEEP_SCRAPES:]
            del self._scraper.scrapes[:-KEEP_SCRAPES]
            if self.scrapes % ROWS_EVERY == 0:
                live_rows(recent, {}, [], 0.0, 0.0)

    @contextmanager
    def running(self) -> Iterator[Watcher]:
        self._thread.start()
        try:
            yield self
        finally:
            self._stop.set()
            self._thread.join(timeout=5)
            self._scraper.close()


@contextmanager
def _watched(service: str) -> Iterator[object]:
    with Watcher(service).running() as watcher:
        yield watcher


def _ramp(watched: bool, round_no: int, run_dir: Path, step_s: float, say: Progress) -> Any:
    derive = breakpoint_around(step_s, timeout_s=3.0)
    label = f"{'with' if watched else 'without'} live view #{round_no}"
    folder = run_dir / f"round-{round_no}-{'with' if watched else 'without'}"
    alongside = _watched if watched else (lambda service: nullcontext())
    row, _ = probe_then_ramp(
        label, {}, Mix(DEFAULT_WEIGHTS), derive, folder, say, alongside=alongside
    )
    return {"knee_rps": row.knee_rps, "predicted_rps": row.predicted_rps,
            "knee_is_lower_bound": row.knee_is_lower_bound, "run_dir": row.run_dir}  # fmt: skip


def measure_cost(scrapes: int, run_dir: Path, say: Progress) -> dict[str, float]:
    """What one scrape and its rows cost: the service's CPU (its own exact counter) and ours."""
    service, slow_api, postgres = free_port(), free_port(), free_port()
    config = StackConfig(service_port=service, slow_api_port=slow_api, pg_port=postgres,
                         run_dir=run_dir / "cost-stack")  # fmt: skip
    stack = NativeStack(config)
    with stack, closing(Scraper(stack.urls["metrics"], 2.0)) as scraper:
        before = scraper.scrape()
        ours = time.process_time()
        for _ in range(scrapes):
            scraper.scrape()
            live_rows(scraper.scrapes[-KEEP_SCRAPES:], {}, [], 0.0, 0.0)
        ours = time.process_time() - ours
        after = scraper.scrape()
    assert before is not None
    assert after is not None
    # each scrape of ours is one /metrics request; the two bracketing ones are not counted
    service_cpu = (after.cpu_seconds - before.cpu_seconds) / (scrapes + 1)
    say(f"cost: {scrapes} scrapes, service {service_cpu * 1000:.2f} ms CPU each, "
        f"ours {ours / scrapes * 1000:.2f} ms each")  # fmt: skip
    return {"service_cpu_ms_per_scrape": service_cpu * 1000, "watcher_cpu_ms_per_scrape":
            ours / scrapes * 1000}  # fmt: skip


def _median(values: Sequence[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return statistics.median(known) if known else None


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.live_view", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--rounds", type=positive(int), default=2, help="rounds (2)")
    parser.add_argument(
        "--cost-only", action="store_true", help="only the CPU one scrape costs (~20 s)"
    )
    parser.add_argument("--scrapes", type=positive(int), default=300, help="for the cost (300)")
    parser.add_argument("--step-s", type=positive(float), default=8.0, help="ramp step, s (8)")
    parser.add_argument("--run-dir", type=Path, help="where runs go (default: a temp dir)")
    parser.add_argument("--json", type=Path, help="write every figure here")
    args = parser.parse_args(argv)
    say = Progress()
    run_dir = (args.run_dir or Path(tempfile.mkdtemp(prefix="brink-live-view-"))).absolute()
    rows: dict[str, Any] = {"with": [], "without": []}
    rows["cost"] = cost = measure_cost(args.scrapes, run_dir, say)
    print(f"one scrape: service {cost['service_cpu_ms_per_scrape']:.2f} ms CPU, live view "
          f"{cost['watcher_cpu_ms_per_scrape']:.2f} ms CPU; at 1/s that is "
          f"{(cost['service_cpu_ms_per_scrape'] + cost['watcher_cpu_ms_per_scrape']) / 10:.2f}% "
          "of a core")  # fmt: skip
    try:
        for round_no in range(1, 0 if args.cost_only else args.rounds + 1):
            for watched in (True, False) if round_no % 2 else (False, True):
                row = _ramp(watched, round_no, run_dir, args.step_s, say)
                rows["with" if watched else "without"].append(row)
    except KeyboardInterrupt:
        print("interrupted; everything started was stopped", file=sys.stderr)
        return 130
    for name in ("with", "without"):
        found = rows[name]
        knees = [f"{r['knee_rps']:.0f}" if r["knee_rps"] else "-" for r in found]
        print(f"{name:>8} live view: knees {', '.join(knees)} req/s")
    with_knee = _median([r["knee_rps"] for r in rows["with"]])
    without = _median([r["knee_rps"] for r in rows["without"]])
    if with_knee and without and not args.cost_only:
        print(f"median knee with / without: {with_knee / without:.3f}")
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(rows, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
