"""A private Prometheus on loopback: the Compose lab's scrape settings and rules, native targets.

The config is written as JSON (valid YAML) into the run dir, with the same global settings as
``dashboards/prometheus/prometheus.yml`` and the same rule files, and targets on 127.0.0.1.

Prometheus answers ``/-/ready`` before it scrapes anything: its scrape manager applies the
targets only after a 5 s throttle. ``wait_first_scrape()`` waits for every target's first scrape
(``/api/v1/targets``), so that a run started after it loses none of its first seconds and its
counters are seen from their first value (``rate()`` needs the sample before an increase).
``start()`` does not call it: it would delay ``brink up``'s ready banner by those ~5 s.

Besides the fixed jobs, a ``file_sd`` job (:func:`run_targets_job`) scrapes every target listed
in ``<run dir>/targets/*.json``: the load generator of a ramp or scenario attached to this stack
(:mod:`loadtests.attach.generator_targets`) writes its own file there while it runs. Its series
get ``job="locust"``, so every dashboard and rule that reads the load generator shows the run,
with the file's ``scenario`` and ``phase`` labels. The Compose lab's Prometheus has the same job
(a test keeps the two equal), reading a folder of this checkout that Compose mounts into its
container.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Mapping, Sequence
from pathlib import Path, PurePath
from types import TracebackType
from typing import Any, Self
from urllib.parse import urlencode, urlsplit

import httpx2

from loadtests.native.process import ManagedProcess, ProcessFailed, port_is_free

SYSTEM_BINARY = Path("/usr/bin/prometheus")
RULES_DIR = Path(__file__).resolve().parents[2] / "dashboards" / "prometheus" / "rules"
JOBS = frozenset({"demo-service", "slow-api", "locust", "postgres"})
"""Scrape job names; fixed, because the dashboards and the rules select on them."""
RUN_JOB = "brink-runs"
"""The ``file_sd`` job of attached runs' load generators (relabelled to ``job="locust"``)."""
TARGETS_DIR = "targets"
SCRAPE_INTERVAL = "2s"
"""Same as the Compose config (a test checks that they agree)."""
READY_TIMEOUT_S = 30.0
FIRST_SCRAPE_TIMEOUT_S = 30.0
"""The 5 s target-update throttle, a 2 s scrape and a busy box, with room to spare."""


FEEDBACK_LOOP: tuple[str, ...] = (
    "job:brink_loadgen_arrivals:rate10s",
    "job:brink_loadgen_good:rate10s",
    "job:brink_http_requests_in_flight:mean10s",
    "job:brink_db_pool_in_use:mean10s",
    "job:brink_db_pool_waiters:mean10s",
    "job:brink_db_connection_hold_seconds:mean10s",
    "job:brink_external_requests:rate10s",
    "job_target_policy:brink_retries:rate10s",
    "job:brink_shed:rate10s",
    "job_target:brink_breaker_state:max_over_time10s",
)
"""The feedback loop as recording rules, in reading order: offered load and goodput, the queue
(in flight), the DB pool (in use, waiters, hold), the slow API's calls, retries, shedding and
the breaker. ``brink up`` prints one Prometheus link that graphs them all."""
GRAPH_RANGE = "15m"


def graph_link(graph_page: str, exprs: Sequence[str] = FEEDBACK_LOOP) -> str:
    """A link to Prometheus' graph page with one graph per expression (``g0.expr=...``, which
    the classic and the React pages both read)."""
    params: dict[str, str] = {}
    for index, expr in enumerate(exprs):
        params |= {f"g{index}.expr": expr, f"g{index}.tab": "0",
                   f"g{index}.range_input": GRAPH_RANGE}  # fmt: skip
    return f"{graph_page}?{urlencode(params)}"


def find_binary() -> str | None:
    """``prometheus`` on ``PATH``, else Debian's ``/usr/bin/prometheus``, else None."""
    found = shutil.which("prometheus")
    if found is not None:
        return found
    return str(SYSTEM_BINARY) if os.access(SYSTEM_BINARY, os.X_OK) else None


def available() -> bool:
    """True when a Prometheus binary is installed here."""
    return find_binary() is not None


def native_config(
    targets: Mapping[str, str], rules_dir: Path = RULES_DIR, targets_dir: Path | None = None
) -> dict[str, Any]:
    """The scrape config for ``targets`` (job -> ``host:port``), rules from ``rules_dir``, and
    whatever target files ``targets_dir`` holds (None: no such job)."""
    unknown = sorted(targets.keys() - JOBS)
    if unknown:
        raise ValueError(f"unknown scrape job(s) {', '.join(unknown)}; known: {sorted(JOBS)}")
    jobs = [
        {"job_name": job, "static_configs": [{"targets": [target]}]}
        for job, target in sorted(targets.items())
    ]
    if targets_dir is not None:
        jobs.append(run_targets_job(targets_dir.resolve()))
    return {
        "global": {
            "scrape_interval": SCRAPE_INTERVAL,
            "scrape_timeout": SCRAPE_INTERVAL,
            "evaluation_interval": SCRAPE_INTERVAL,
        },
        "rule_files": [str(rules_dir.resolve() / "*.yml")],
        "scrape_configs": jobs,
    }


def run_targets_job(targets_dir: PurePath) -> dict[str, Any]:
    """The ``file_sd`` job that scrapes attached runs' load generators as ``job="locust"``;
    ``targets_dir`` as the Prometheus that reads it sees it (natively an absolute host path;
    under Compose the folder inside its container, which ``prometheus.yml`` repeats).

    ``honor_labels``: the generator's own ``brink_loadgen_run_info{scenario, phase}`` keeps its
    labels instead of becoming ``exported_scenario`` beside the target file's equal ones.
    ``refresh_interval``: the files are also re-read every 5 s, not only on file-change events
    (whether those cross a container's bind mount is up to the Docker installation).
    """
    return {
        "job_name": RUN_JOB,
        "honor_labels": True,
        "file_sd_configs": [{"files": [str(targets_dir / "*.json")], "refresh_interval": "5s"}],
        "relabel_configs": [{"target_label": "job", "replacement": "locust"}],
    }


def unscraped(active_targets: Sequence[Mapping[str, Any]], jobs: Mapping[str, str]) -> list[str]:
    """The ``job (host:port)`` of each target in ``jobs`` that Prometheus has not scraped yet.

    ``active_targets`` is ``/api/v1/targets``' ``data.activeTargets``. A target is scraped once
    its health is no longer ``unknown`` (``up`` or ``down``: a target that is down has been
    tried, and waiting longer would not change that); a job not listed at all has not even
    been applied yet.
    """
    scraped = {
        target["labels"].get("job")
        for target in active_targets
        if target.get("health", "unknown") != "unknown"
    }
    return [f"{job} ({address})" for job, address in sorted(jobs.items()) if job not in scraped]


class NativePrometheus:
    """Prometheus on ``127.0.0.1:port`` scraping ``targets``, its config and TSDB in ``run_dir``.

    ``start()`` waits for ``/-/ready``; ``wait_first_scrape()`` for every target's first
    scrape. ``stop()`` leaves no process (the TSDB stays on disk).
    """

    def __init__(
        self,
        port: int,
        targets: Mapping[str, str],
        run_dir: Path,
        *,
        binary: str | None = None,
        rules_dir: Path = RULES_DIR,
    ) -> None:
        self.port = port
        self.run_dir = run_dir
        self.targets = dict(targets)
        self.config = native_config(targets, rules_dir, self.targets_dir)
        self.rules_dir = rules_dir
        self.binary = binary
        self.process: ManagedProcess | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def targets_dir(self) -> Path:
        """Where attached runs put their load generators' target files (``file_sd``)."""
        return self.run_dir / TARGETS_DIR

    @property
    def config_path(self) -> Path:
        return self.run_dir / "prometheus.yml"

    def write_config(self) -> Path:
        """Write the config file into the run dir (``start()`` does it too)."""
        self.targets_dir.mkdir(parents=True, exist_ok=True)
        self.config_path.write_text(json.dumps(self.config, indent=2) + "\n")
        return self.config_path

    def start(self) -> Self:
        """Start Prometheus and wait until it is ready; on failure nothing is left running."""
        binary = self.binary or find_binary()
        if binary is None:
            raise ProcessFailed("no Prometheus binary (install Debian's `prometheus`)")
        if not self.rules_dir.is_dir():
            raise ProcessFailed(f"no rules at {self.rules_dir}")
        if not port_is_free(self.port):
            raise ProcessFailed(f"port {self.port} on 127.0.0.1 for Prometheus is already in use")
        argv = [
            binary,
            f"--config.file={self.write_config()}",
            f"--storage.tsdb.path={self.run_dir / 'data'}",
            f"--web.listen-address=127.0.0.1:{self.port}",
        ]
        # A fresh TSDB per start: series of an earlier run (other ports, other processes) would
        # otherwise stay current for 5 minutes and double-count in every sum().
        shutil.rmtree(self.run_dir / "data", ignore_errors=True)
        for stale in self.targets_dir.glob("*.json"):  # a run that died with an earlier stack
            stale.unlink(missing_ok=True)
        log = self.run_dir / "prometheus.log"
        log.unlink(missing_ok=True)
        self.process = ManagedProcess("Prometheus", argv, log).start()
        try:
            self.process.wait_http_ready(self.url + "/-/ready", READY_TIMEOUT_S)
        except BaseException:
            self.stop()
            raise
        return self

    def wait_first_scrape(self, timeout_s: float = FIRST_SCRAPE_TIMEOUT_S) -> None:
        """Poll ``/api/v1/targets`` until every target has been scraped once.

        Raises :class:`ProcessFailed` naming the targets still waiting after ``timeout_s``,
        or at once if Prometheus exits.
        """
        deadline = time.monotonic() + timeout_s
        waiting = [f"{job} ({address})" for job, address in sorted(self.targets.items())]
        with httpx2.Client(timeout=2.0) as client:
            while True:
                if self.process is None or not self.process.running():
                    raise ProcessFailed("Prometheus is not running; it scraped nothing")
                try:
                    response = client.get(self.url + "/api/v1/targets", params={"state": "active"})
                    waiting = unscraped(response.json()["data"]["activeTargets"], self.targets)
                except (httpx2.TransportError, ValueError, KeyError):
                    pass  # not answering yet, or an odd body: keep polling until the deadline
                if not waiting:
                    return
                if time.monotonic() >= deadline:
                    raise ProcessFailed(
                        f"Prometheus did not scrape {', '.join(waiting)} within {timeout_s:g} s"
                    )
                time.sleep(0.1)

    def running(self) -> bool:
        return self.process is not None and self.process.running()

    def stop(self) -> None:
        """Stop Prometheus (SIGTERM, then SIGKILL); idempotent."""
        if self.process is not None:
            self.process.stop()

    def graph_page(self) -> str:
        """The graph page's URL: where ``/`` redirects (Debian's build has only the classic page,
        ``/classic/graph``; upstream's React one is ``/graph``)."""
        try:
            response = httpx2.get(self.url + "/", timeout=5.0, follow_redirects=False)
        except httpx2.HTTPError:
            return self.url + "/graph"
        location = response.headers.get("location") if response.is_redirect else None
        return self.url + (urlsplit(location).path if location else "/graph")

    def query(self, promql: str, client: httpx2.Client | None = None) -> list[dict[str, Any]]:
        """The result of an instant query: ``[{"metric": {...}, "value": [time, "v"]}, ...]``."""
        if client is None:
            with httpx2.Client(timeout=5.0) as own:
                return self.query(promql, own)
        response = client.get(self.url + "/api/v1/query", params={"query": promql})
        body = response.json()
        if response.status_code != 200 or body.get("status") != "success":
            raise RuntimeError(f"query {promql!r} failed: {body.get('error', response.text)}")
        result: list[dict[str, Any]] = body["data"]["result"]
        return result

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
