"""The "Tipping point" overview: load vs goodput, latency and queues, on one screen."""

from __future__ import annotations

from . import common as r
from .kit import Json, dashboard, dashed, right_axis, stat, text, thresholds, timeseries

HOW_TO_READ = """\
**Left to right, top to bottom.**

1. **Load.** *Target* (dashed) is what the Locust profile asks for, *offered* what the
   generator started, *achieved* what came back (answered or failed), *goodput* the
   successes within the SLO (0.5 s). Below the knee the four lines lie on top of each other.
2. **The knee.** Red regions mark *past the knee*: goodput under 95% of offered, or the
   users' p95 over the SLO (the rule `brink ramp` uses). The offered load where the first
   red region starts is the tipping point. Blue marks are Locust's stage changes.
3. **The feedback loop.** Past the knee throughput stops rising, so by Little's law
   (in flight = throughput · latency) every extra request waits: in flight and pool waiters
   grow *faster than the load*, latency climbs, requests time out while the server still
   works on them, and goodput falls while achieved stays flat. That is the collapse.
4. **Why.** *Pressure points* shows which resource saturated first: the DB pool at 100%,
   the slow API past its capacity, or the single worker's CPU at one core.
"""

_P95 = r.quantiles(r.CLIENT_LATENCY, which=("0.95",))["p95"]


def overview() -> Json:
    panels = [
        stat(
            "Stage",
            "short",
            "The Locust profile's current stage.",
            {"{{stage}}": "brink_loadgen_stage"},
            show_name=True,
        ),
        stat(
            "Offered", "reqps", "Requests the generator starts per second.", {"offered": r.OFFERED}
        ),
        stat("Goodput", "reqps", "Successes within the SLO per second.", {"goodput": r.GOODPUT}),
        stat(
            "Goodput / offered",
            "percentunit",
            "Under 95%: past the knee.",
            {"goodput / offered": r.GOOD_RATIO},
            colors=thresholds(("red", None), ("green", 0.95)),
        ),
        stat(
            "Users' p95",
            "s",
            "Client-side p95 latency; red over the 0.5 s SLO.",
            {"p95": _P95},
            colors=thresholds(("green", None), ("red", 0.5)),
        ),
        stat(
            "Pool waiters",
            "short",
            "Mean requests waiting for a DB connection (Little's law on the wait time).",
            {"waiters": r.POOL_WAITERS},
            colors=thresholds(("green", None), ("red", 1)),
        ),
        timeseries(
            "Load: offered, achieved, goodput",
            "reqps",
            "Requests per second along the path. Goodput leaving the offered line is the "
            "tipping point; errors and dropped arrivals show what became of the rest.",
            {
                "target": "sum(brink_loadgen_target_rps)",
                "offered": r.OFFERED,
                "achieved": r.ACHIEVED,
                "goodput": r.GOODPUT,
                "served (service)": r.SERVED,
                "errors": r.CLIENT_ERRORS,
                "dropped": r.DROPPED,
            },
            w=16,
            h=10,
            overrides=[dashed("target", "text")],
        ),
        text("How to read this", HOW_TO_READ, w=8, h=10),
        timeseries(
            "Latency the users see",
            "s",
            "Client-side quantiles, failures included, against the p95 objective (log scale).",
            r.quantiles(r.CLIENT_LATENCY) | {"SLO (p95)": r.P95_OBJECTIVE},
            h=9,
            log=True,
            overrides=[dashed("SLO (p95)")],
        ),
        timeseries(
            "Goodput / offered: the knee",
            "percentunit",
            "Share of the offered load that succeeds within the SLO. The knee is where it "
            "leaves the dashed 95% line.",
            {"goodput / offered": r.GOOD_RATIO, "knee (95%)": r.GOOD_OBJECTIVE},
            h=9,
            max_value=1.05,
            overrides=[dashed("knee (95%)")],
        ),
        timeseries(
            "In flight: the queue grows",
            "short",
            "Requests in each place. Past the knee they grow faster than the load: the "
            "feedback loop. Service in flight above throughput · latency: a queue is building.",
            {
                "client in flight": "sum(brink_loadgen_in_flight)",
                "service in flight": r.IN_FLIGHT_SEEN,
                "throughput · latency": r.IN_FLIGHT_LITTLE,
                "pool waiters": r.POOL_WAITERS,
                "slow API calls": r.EXTERNAL_IN_FLIGHT,
            },
            h=9,
        ),
        timeseries(
            "DB pool: utilisation and waiters",
            "percentunit",
            "Mean connections in use / pool max (left) and mean requests waiting for one "
            "(right). Latency starts to climb near 90%.",
            {"utilisation": r.POOL_USE, "waiters": r.POOL_WAITERS},
            h=9,
            overrides=[right_axis("waiters", "short")],
        ),
    ]
    return dashboard(
        "brink-overview",
        "Tipping point",
        "Offered load vs goodput, latency and queues: where brink tips, and the collapse.",
        panels,
        [r.STAGES, r.KNEE, r.LESSONS],
    )
