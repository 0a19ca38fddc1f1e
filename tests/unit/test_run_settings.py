"""Each run's settings from the options, and the web UI's form checked before a run starts."""

from __future__ import annotations

import argparse

import pytest

from loadtests.run_settings import FORM_FIELDS, form_problem, run_settings


def _options(**changes: object) -> argparse.Namespace:
    """brink's option defaults (loadtests/loadgen.py), as Locust parses them."""
    defaults = {
        "load_profile": "peak",
        "average_rps": 50.0,
        "peak_rps": 100.0,
        "step_s": 30.0,
        "slo_ms": 500.0,
        "mix": "item=6,order=2,quote=1,cpu=1",
        "arrivals": "poisson",
        "client_retries": "none",
        "timeout_s": 10.0,
        "rps_cap": 2000.0,
        "duration_cap_s": 1800.0,
    }
    return argparse.Namespace(**(defaults | changes))


def test_every_field_of_the_form_reaches_the_run() -> None:
    settings = run_settings(
        _options(
            load_profile="average",
            average_rps=20.0,
            peak_rps=60.0,
            step_s=4.0,
            slo_ms=250.0,
            mix="order=1",
            arrivals="even",
            client_retries="budgeted",
        )
    )
    first = settings.schedule.windows[0]
    assert (first.name, first.rps, first.duration_s) == ("average 1/3 (20 req/s)", 20.0, 4.0)
    assert settings.schedule.drain_s == 15.0  # the client timeout + 5 s
    assert settings.mix.shares() == {"order": 1.0}
    assert (settings.retry_policy, settings.arrivals, settings.slo_s) == ("budgeted", "even", 0.25)


def test_a_good_form_passes_and_leaves_the_options_alone() -> None:
    options = _options()
    form = {"user_count": "0", "spawn_rate": "0", "host": "http://x", "run_time": ""}
    form |= {"load_profile": "spike", "average_rps": "60", "mix": "item=1", "slo_ms": "1000"}
    assert form_problem(options, form) is None
    assert options == _options()


@pytest.mark.parametrize(
    ("field", "value", "says"),
    [
        ("mix", "bogus=1", "bad mix entry 'bogus=1'"),
        ("mix", "item=0", "at least one kind"),
        ("average_rps", "fast", "average_rps: 'fast' is not a float"),
        ("average_rps", "nan", "average_rps must be a finite number > 0"),
        ("peak_rps", "10", "peak_rps (10) must be >= average_rps (50)"),
        ("step_s", "0", "step_s must be a finite number > 0"),
        ("slo_ms", "inf", "slo_ms must be a finite number > 0"),
        ("load_profile", "no-such", "unknown profile 'no-such'"),
        ("arrivals", "bursts", "arrivals must be one of poisson, even"),
        ("client_retries", "forever", "client_retries must be one of none, naive, budgeted"),
    ],
)
def test_a_bad_field_is_refused_by_name(field: str, value: str, says: str) -> None:
    assert field in FORM_FIELDS
    problem = form_problem(_options(), {field: value})
    assert problem is not None
    assert says in problem


def test_fields_the_form_leaves_out_keep_their_value() -> None:
    assert form_problem(_options(mix="nonsense"), {"mix": "cpu=1"}) is None
    assert form_problem(_options(mix="nonsense"), {"average_rps": "10"}) is not None
