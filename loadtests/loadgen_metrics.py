"""Prometheus metrics of the load generator, served by the Locust master (or the only process).

Locust has no Prometheus exporter of its own, so this collector reads, at scrape time, the
runner's user count and per-name statistics and brink's merged per-second series (offered,
completed, good, dropped, errors, latency). Names carry base units; labels are bounded
(request names are route templates, stages come from the profile).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, make_wsgi_app
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from demo_service.metrics import LATENCY_BUCKETS
from loadtests.series import Second, Series, bucket_top, totals


@dataclass(frozen=True)
class RunnerView:
    """What the collector needs from Locust, read through callables so it stays testable."""

    users: Callable[[], int]
    requests_by_name: Callable[[], dict[tuple[str, str], tuple[int, int]]]
    """``(method, name) -> (requests, failures)``."""
    stage: Callable[[], tuple[int, str, float] | None]
    """``(index, name, target req/s)`` of the current stage, None when not running."""
    in_flight: Callable[[], int]
    run_labels: Mapping[str, str] = field(default_factory=dict)
    """What this run is (``--brink-run-label``): exported as ``brink_loadgen_run_info``."""


RUN_LABELS = ("scenario", "phase")
"""The labels of ``brink_loadgen_run_info``: a fixed, bounded set."""


def parse_run_labels(texts: Iterable[str]) -> dict[str, str]:
    """``["scenario=metastable", "phase=fragile"]`` → a dict; ValueError for another key."""
    labels = {}
    for text in texts:
        key, equals, value = text.partition("=")
        if not equals or key not in RUN_LABELS:
            raise ValueError(f"run label {text!r}: expected one of {', '.join(RUN_LABELS)}=VALUE")
        labels[key] = value
    return labels


def _cumulative_buckets(latency: Counter[int]) -> list[tuple[str, float]]:
    """brink's fine histogram folded into the standard latency buckets, cumulative."""
    counts = [0] * (len(LATENCY_BUCKETS) + 1)
    for index, count in latency.items():
        top = bucket_top(index)
        slot = next((i for i, edge in enumerate(LATENCY_BUCKETS) if top <= edge * 1.0001), -1)
        counts[slot] += count
    buckets, running = [], 0
    for edge, count in zip([*map(str, LATENCY_BUCKETS), "+Inf"], counts, strict=True):
        running += count
        buckets.append((edge, float(running)))
    return buckets


class LoadgenCollector(Collector):
    def __init__(self, series: Series, view: RunnerView) -> None:
        self.series = series
        self.view = view

    def collect(self) -> Iterator[Metric]:
        view = self.view
        total: Second = totals(list(self.series.seconds.values()))
        yield GaugeMetricFamily(
            "brink_loadgen_users", "Locust users (dispatchers) running.", value=view.users()
        )
        yield GaugeMetricFamily(
            "brink_loadgen_in_flight", "Requests sent and not yet answered.", value=view.in_flight()
        )
        stage = view.stage()
        index, name, target = stage if stage is not None else (-1, "idle", 0.0)
        yield GaugeMetricFamily(
            "brink_loadgen_target_rps", "Arrival rate the profile asks for now.", value=target
        )
        yield GaugeMetricFamily(
            "brink_loadgen_stage_index", "Current profile stage (-1: idle).", value=index
        )
        info = GaugeMetricFamily(
            "brink_loadgen_stage", "The current stage's name.", labels=["stage"]
        )
        info.add_metric([name], 1)
        yield info
        run = GaugeMetricFamily(
            "brink_loadgen_run_info",
            "What this generator runs: the scenario and its phase (empty: a run of its own).",
            labels=list(RUN_LABELS),
        )
        run.add_metric([view.run_labels.get(label, "") for label in RUN_LABELS], 1)
        yield run
        for metric, help_text, value in (
            ("brink_loadgen_arrivals", "Requests started (the offered load).", total.arrivals),
            ("brink_loadgen_dropped", "Arrivals the generator could not send.", total.dropped),
            ("brink_loadgen_completed", "Requests answered or failed (achieved).", total.completed),
            ("brink_loadgen_good", "Successful requests within the SLO (goodput).", total.good),
            (
                "brink_loadgen_retries",
                "Extra attempts of the client's retry policy.",
                total.retries,
            ),
        ):
            yield CounterMetricFamily(metric, help_text, value=value)
        errors = CounterMetricFamily(
            "brink_loadgen_errors", "Failed requests by kind.", labels=["kind"]
        )
        for kind, count in sorted(total.errors.items()):
            errors.add_metric([kind], count)
        yield errors
        requests = CounterMetricFamily(
            "brink_loadgen_requests",
            "Requests by name and result, as Locust counts them.",
            labels=["method", "name", "result"],
        )
        for (method, request_name), (count, failures) in sorted(view.requests_by_name().items()):
            requests.add_metric([method, request_name, "ok"], count - failures)
            requests.add_metric([method, request_name, "failure"], failures)
        yield requests
        latency_sum = sum(bucket_top(i) * n for i, n in total.latency.items())
        yield HistogramMetricFamily(
            "brink_loadgen_latency_seconds",
            "Client-side latency of completed requests (failures included).",
            buckets=_cumulative_buckets(total.latency),
            sum_value=latency_sum,
        )


def serve_metrics(series: Series, view: RunnerView, port: int, host: str = "127.0.0.1") -> None:
    """Serve ``/metrics`` on ``host:port`` with gevent's WSGI server, inside Locust's hub.

    (prometheus_client's own ``start_http_server`` runs a thread, which under Locust's gevent
    patching swallowed SIGTERM: Locust then died without its graceful shutdown.)
    """
    from gevent.pywsgi import WSGIServer  # only ever imported inside a Locust process

    registry = CollectorRegistry()
    registry.register(LoadgenCollector(series, view))
    WSGIServer((host, port), make_wsgi_app(registry), log=None).start()
