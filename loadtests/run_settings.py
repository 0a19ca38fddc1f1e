"""What one run of brink's Locust file takes from its options, all checked before it starts.

Locust's web UI may change any of brink's custom parameters between runs (the form's values
land in ``environment.parsed_options``, and reach the workers with the spawn message). Every
run builds its profile, request mix and retry policy afresh from those options here, so a new
value always applies, and a bad one fails with a message naming it before any load is sent:
never mid-run, never as a silent replay of the previous run. Pure: no Locust, no gevent.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Mapping
from dataclasses import dataclass

from loadtests.client_retry import POLICIES
from loadtests.mix import Mix, parse_weights
from loadtests.pacing import ARRIVALS
from loadtests.profiles import ProfileParams, build_profile
from loadtests.shapes import RateSchedule

FORM_FIELDS = (
    "load_profile",
    "average_rps",
    "peak_rps",
    "step_s",
    "slo_ms",
    "mix",
    "arrivals",
    "client_retries",
)
"""brink's options shown in the web UI's form, by their ``dest`` names (what the form posts)."""
DRAIN_MARGIN_S = 5.0
"""The drain tail is the client timeout plus this: in-flight requests finish and are reported."""


@dataclass(frozen=True)
class RunSettings:
    """Everything one run needs from the options, built and checked at once."""

    schedule: RateSchedule
    mix: Mix
    retry_policy: str
    arrivals: str
    slo_s: float


def _one_of(name: str, value: str, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise ValueError(f"{name} must be one of {', '.join(allowed)}, got {value!r}")
    return value


def run_settings(options: argparse.Namespace) -> RunSettings:
    """The run the options describe; ValueError names the first bad option."""
    if not (math.isfinite(options.slo_ms) and options.slo_ms > 0):
        raise ValueError(f"slo_ms must be a finite number > 0, got {options.slo_ms!r}")
    params = ProfileParams(
        average_rps=options.average_rps,
        peak_rps=options.peak_rps,
        step_s=options.step_s,
        rps_cap=options.rps_cap,
        duration_cap_s=options.duration_cap_s,
    )
    profile = build_profile(options.load_profile, params)
    return RunSettings(
        schedule=RateSchedule(profile, drain_s=options.timeout_s + DRAIN_MARGIN_S),
        mix=Mix(parse_weights(options.mix)),
        retry_policy=_one_of("client_retries", options.client_retries, POLICIES),
        arrivals=_one_of("arrivals", options.arrivals, ARRIVALS),
        slo_s=options.slo_ms / 1000,
    )


def form_problem(options: argparse.Namespace, form: Mapping[str, str]) -> str | None:
    """Why the web UI's form would start a broken run; None when it would run as posted.

    The form's values are converted as Locust's ``/swarm`` converts them (to the type of the
    option's current value) onto a copy of ``options``, which stays untouched.
    """
    candidate = argparse.Namespace(**vars(options))
    for name in FORM_FIELDS:
        if name not in form:
            continue
        kind = type(getattr(options, name))
        try:
            setattr(candidate, name, kind(form[name]))
        except ValueError:
            return f"{name}: {form[name]!r} is not a {kind.__name__}"
    try:
        run_settings(candidate)
    except ValueError as exc:
        return f"not started: {exc}"
    return None
