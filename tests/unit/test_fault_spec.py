"""Fault schedule parsing and ordering: pure, against the servers' own knob models."""

from __future__ import annotations

import re

import pytest

from loadtests.faults.spec import (
    FaultAction,
    FaultSchedule,
    FaultStep,
    parse_action,
    parse_duration,
    parse_step,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("slow_api.extra_latency_s=0.2", FaultAction("slow_api", "extra_latency_s", 0.2)),
        ("slow_api.outage=hang", FaultAction("slow_api", "outage", "hang")),
        ("slow_api.capacity=5", FaultAction("slow_api", "capacity", 5)),
        ("service.db_latency_s=0.05", FaultAction("service", "db_latency_s", 0.05)),
        ("service.pool_size=3", FaultAction("service", "pool_size", 3)),
        ("resilience.preset=resilient", FaultAction("resilience", "preset", "resilient")),
        ("resilience.retry.policy=naive", FaultAction("resilience", "retry.policy", "naive")),
        ("resilience.breaker.enabled=false", FaultAction("resilience", "breaker.enabled", False)),
        ("resilience.shedding.limit=40", FaultAction("resilience", "shedding.limit", 40)),
        ("postgres.pause", FaultAction("postgres", "pause")),
        ("postgres.restart", FaultAction("postgres", "restart")),
        ("postgres.kill", FaultAction("postgres", "kill")),
        ("postgres.kill_backend", FaultAction("postgres", "kill_backend")),
        ("service.pause", FaultAction("service", "pause")),
        ("slow_api.pause", FaultAction("slow_api", "pause")),
        ("service.cpu=0.5", FaultAction("service", "cpu", 0.5)),
        ("postgres.cpu=none", FaultAction("postgres", "cpu", None)),
    ],
)
def test_parse_action_accepts_every_kind(text: str, expected: FaultAction) -> None:
    action = parse_action(text)
    assert action == expected
    assert type(action.value) is type(expected.value)
    assert parse_action(str(action)) == action  # the text form round-trips


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("extra_latency_s=0.2", "a fault reads 'target.knob=value'"),
        ("db.latency=1", "unknown target 'db'"),
        ("slow_api.latency=1", "unknown knob; slow_api has base_latency_s"),
        ("slow_api.extra_latency_s", "a knob needs a value"),
        ("slow_api.extra_latency_s=-0.1", "greater than or equal to 0"),
        ("slow_api.extra_latency_s=fast", "valid number"),
        ("slow_api.error_rate=1.5", "less than or equal to 1"),
        ("slow_api.outage=down", "'none', 'hang' or 'error'"),
        ("service.pool_size=0", "greater than or equal to 1"),
        ("service.pool_size=2.5", "valid integer"),
        ("service.hot_row_lock_s=11", "less than or equal to 10"),
        ("resilience.preset=sturdy", "not a preset; use fragile, resilient, adaptive"),
        ("resilience.retry=naive", "resilience.<group>.<knob>"),
        ("resilience.cache.size=1", "resilience.<group>.<knob>"),
        ("resilience.retry.mode=naive", "unknown knob; retry has policy"),
        ("resilience.retry.policy=smart", "'none', 'naive' or 'budgeted'"),
        ("postgres.pause=1", "takes no value"),
        ("postgres.restart=now", "takes no value"),
        ("service.cpu", "needs a value"),
        ("service.cpu=0", "cores must be > 0"),
        ("service.cpu=-1", "cores must be > 0"),
        ("service.cpu=half", "must be a number or none"),
        ("postgres.stop", "postgres has no operation 'stop'; use pause, restart, kill, kill_"),
        ("postgres.kill_backend=1", "postgres.kill_backend takes no value"),
        ("service.kill_backend", "service.kill_backend: a fault of postgres only; use postgres."),
        ("slow_api.kill_backend", "slow_api.kill_backend: a fault of postgres only"),
        ("service.stop", "unknown knob; service has db_latency_s"),
    ],
)
def test_parse_action_refuses_with_the_reason(text: str, reason: str) -> None:
    with pytest.raises(ValueError, match=re.escape(reason)):
        parse_action(text)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("60s", 60.0), ("60", 60.0), ("1.5s", 1.5), ("500ms", 0.5), ("2m", 120.0), (".5s", 0.5)],
)
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "s", "-1s", "1h", "1 minute", "soon"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(ValueError, match="is not a duration"):
        parse_duration(text)


def test_parse_step_forms() -> None:
    knob = FaultAction("slow_api", "extra_latency_s", 0.2)
    assert parse_step("at 60s set slow_api.extra_latency_s=0.2 for 10s") == FaultStep(
        60.0, knob, 10.0
    )
    assert parse_step("at 60s slow_api.extra_latency_s=0.2") == FaultStep(60.0, knob)
    assert parse_step("  AT 30s postgres.restart ") == FaultStep(
        30.0, FaultAction("postgres", "restart")
    )
    assert parse_step("at 5s set resilience.preset=fragile") == FaultStep(
        5.0, FaultAction("resilience", "preset", "fragile")
    )
    step = parse_step("at 1m service.cpu=0.3 for 500ms")
    assert (step.at_s, step.for_s, step.until_s) == (60.0, 0.5, 60.5)
    assert parse_step(str(step)) == step


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("set slow_api.capacity=5", "a step reads 'at <time> [set] <fault> [for <duration>]'"),
        ("at 10s", "a step reads"),
        ("at 10s slow_api.capacity=5 for", "a step reads"),
        ("at soon slow_api.capacity=5", "'soon' is not a duration"),
        ("at 10s slow_api.capacity=5 for 0s", "'for' must be > 0 s"),
        ("at 10s postgres.restart for 5s", "postgres.restart is instantaneous"),
        ("at 10s postgres.kill for 5s", "postgres.kill is instantaneous"),
        ("at 10s postgres.kill_backend for 5s", "postgres.kill_backend is instantaneous"),
        ("at 10s slow_api.capacity=0", "greater than or equal to 1"),
    ],
)
def test_parse_step_refuses_with_the_reason(text: str, reason: str) -> None:
    with pytest.raises(ValueError, match=re.escape(reason)) as caught:
        parse_step(text)
    assert str(caught.value).startswith(repr(text))  # the whole step is quoted, so a user finds it


def test_events_are_sorted_undo_before_apply_at_one_instant() -> None:
    schedule = FaultSchedule.parse(
        """
        # the dependency slows down, then slows down more
        at 70s set slow_api.extra_latency_s=0.5 for 5s
        at 60s set slow_api.extra_latency_s=0.2 for 10s
        at 30s postgres.restart
        at 0s resilience.preset=fragile
        """
    )
    slow, slower = (
        FaultAction("slow_api", "extra_latency_s", 0.2),
        FaultAction("slow_api", "extra_latency_s", 0.5),
    )
    assert schedule.events() == [
        (0.0, "apply", FaultAction("resilience", "preset", "fragile")),
        (30.0, "apply", FaultAction("postgres", "restart")),
        (60.0, "apply", slow),
        (70.0, "undo", slow),
        (70.0, "apply", slower),
        (75.0, "undo", slower),
    ]
    assert schedule.duration_s == 75.0


def test_same_time_keeps_the_written_order() -> None:
    schedule = FaultSchedule.parse("at 5s service.pause for 1s; at 5s slow_api.pause for 1s")
    assert [str(action) for _, _, action in schedule.events()] == [
        "service.pause",
        "slow_api.pause",
        "service.pause",
        "slow_api.pause",
    ]


@pytest.mark.parametrize(
    "texts",
    [
        "at 60s slow_api.extra_latency_s=0.2 for 10s; at 65s slow_api.extra_latency_s=0.5",
        "at 65s slow_api.extra_latency_s=0.5; at 60s slow_api.extra_latency_s=0.2 for 10s",
        "at 10s service.pause; at 10s service.pause for 1s",
        "at 0s resilience.preset=fragile for 60s; at 30s resilience.retry.policy=naive",
        "at 0s service.cpu=0.5 for 10s; at 5s service.cpu=0.3 for 10s",
    ],
)
def test_overlapping_steps_on_one_key_are_refused(texts: str) -> None:
    with pytest.raises(ValueError, match="steps overlap"):
        FaultSchedule.parse(texts)


def test_steps_on_different_keys_may_overlap() -> None:
    schedule = FaultSchedule.parse(
        "at 0s slow_api.extra_latency_s=0.2 for 10s; at 5s service.db_latency_s=0.1 for 10s;"
        "at 5s postgres.restart; at 6s postgres.kill; at 7s service.pause for 1s"
    )
    assert len(schedule.events()) == 8


def test_kill_backend_is_an_instant_postgres_fault() -> None:
    step = parse_step("at 30s postgres.kill_backend")
    assert step == FaultStep(30.0, FaultAction("postgres", "kill_backend"))
    assert (step.action.is_process, step.action.instant, step.until_s) == (True, True, None)
    assert str(step) == "at 30s postgres.kill_backend"
    # instant: it overlaps nothing, not even a pause of Postgres in force
    schedule = FaultSchedule.parse("at 0s postgres.pause for 10s; at 5s postgres.kill_backend")
    assert [kind for _, kind, _ in schedule.events()] == ["apply", "apply", "undo"]


def test_empty_schedule() -> None:
    schedule = FaultSchedule.parse("\n  # nothing\n")
    assert schedule.steps == ()
    assert schedule.events() == []
    assert schedule.duration_s == 0.0
