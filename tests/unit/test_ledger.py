"""The order ledger's pure parts: classifying answers, folding attempts, judging the tables,
and what a broken ledger does to a ramp's exit code."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from loadtests.exit_codes import ExitCode
from loadtests.ledger import (
    ItemRow,
    LedgerEvent,
    LedgerVerdict,
    LedgerWriter,
    OrderIntent,
    OrderRow,
    check,
    classify,
    fold,
    parse_lines,
    read_ledger,
)
from loadtests.ramp import (
    _verdict,
)
from loadtests.runner import RampConfig, RampRun
from loadtests.tipping import find_tipping_point
from tests.unit.synthetic import SLO_S, hockey

KEY = "6f1c9d2e-8a4b-4c3d-9e5f-0a1b2c3d4e5f"


def _body(key: str = KEY, order_id: object = 11) -> dict[str, object]:
    return {"id": order_id, "item_id": 3, "quantity": 1, "idempotency_key": key}


@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        (201, _body(), ("acknowledged", 11)),
        (200, _body(), ("acknowledged", 11)),  # a replay of the same key
        (201, _body(key="someone-else"), ("unknown", None)),
        (201, _body(order_id="11"), ("unknown", None)),
        (201, None, ("unknown", None)),
        (0, None, ("unknown", None)),  # timeout, reset: may have committed
        (404, {"detail": "item 3 does not exist"}, ("failed", None)),
        (409, {"detail": "item 3 has 0 in stock, 1 requested"}, ("failed", None)),
        (422, {"detail": []}, ("failed", None)),
        (503, {"detail": "in_flight_limit"}, ("failed", None)),
        (
            503,
            {"detail": "database pool exhausted: no connection free within 0.25 s"},
            ("failed", None),
        ),
        (503, {"detail": "db_statement deadline of 0.5 s exceeded"}, ("failed", None)),
        (503, {"detail": "database unavailable: ConnectionRefusedError"}, ("failed", None)),
        (503, {"detail": "database unavailable: CommitInDoubt"}, ("unknown", None)),
        (503, {"detail": "breaker open"}, ("unknown", None)),  # not a documented refusal
        (503, None, ("unknown", None)),
        (500, {"detail": "Internal Server Error"}, ("unknown", None)),
        (504, {"detail": "external deadline"}, ("unknown", None)),
    ],
)
def test_classify(status: int, body: object, expected: tuple[str, int | None]) -> None:
    assert classify(status, body, KEY) == expected


def _event(key: str, event: str, order_id: int | None = None, item: int = 1) -> LedgerEvent:
    return LedgerEvent(key, item, 1, event, 0, order_id)  # type: ignore[arg-type]


def test_fold_any_acknowledgement_wins_and_doubt_survives_a_later_refusal() -> None:
    events = [
        _event("a", "sent"),
        _event("a", "unknown"),
        _event("a", "acknowledged", 5),
        _event("a", "failed"),  # a late answer cannot take back an acknowledgement
        _event("b", "sent"),
        _event("b", "unknown"),
        _event("b", "failed"),  # attempt 1 may still commit: b stays unknown
        _event("c", "sent"),
        _event("c", "failed"),
        _event("c", "failed"),
        _event("d", "sent"),  # the generator stopped before any answer
    ]
    fates = fold(events)
    assert {key: fate.outcome for key, fate in fates.items()} == {
        "a": "acknowledged",
        "b": "unknown",
        "c": "failed",
        "d": "unknown",
    }
    assert fates["a"].order_id == 5


ITEMS = [ItemRow(1, stock=98, initial_stock=100), ItemRow(2, stock=100, initial_stock=100)]


def _clean() -> tuple[list[LedgerEvent], list[OrderRow]]:
    events = [
        _event("ack", "sent"),
        _event("ack", "acknowledged", 1),
        _event("refused", "sent"),
        _event("refused", "failed"),
        _event("maybe-yes", "sent"),
        _event("maybe-yes", "unknown"),
        _event("maybe-no", "sent"),
    ]
    rows = [OrderRow(1, "ack", 1, 1), OrderRow(2, "maybe-yes", 1, 1)]
    return events, rows


def test_a_clean_run_holds_and_counts_unknowns_apart() -> None:
    events, rows = _clean()
    verdict = check(events, rows, ITEMS)
    assert verdict.ok, verdict.explanation
    assert (verdict.sent, verdict.acknowledged, verdict.failed, verdict.unknown) == (4, 1, 1, 2)
    assert (verdict.unknown_present, verdict.unknown_absent) == (1, 1)
    assert verdict.explanation.startswith("ledger holds: 4 orders sent")


def test_an_acknowledged_order_missing_or_altered_is_lost() -> None:
    events, rows = _clean()
    missing = check(events, rows[1:], [ItemRow(1, 99, 100), ITEMS[1]])
    assert (missing.lost, missing.ok) == (1, False)
    assert "1 lost" in missing.explanation
    altered = check(
        events, [OrderRow(1, "ack", 2, 1), rows[1]], [ItemRow(1, 99, 100), ItemRow(2, 99, 100)]
    )
    assert altered.lost == 1  # stored against another item: not the order acknowledged


def test_rows_nobody_sent_are_unexpected_within_the_run_only() -> None:
    events, rows = _clean()
    before_run = OrderRow(9, "probe", 2, 1)
    items = [ITEMS[0], ItemRow(2, 99, 100)]
    assert check(events, [*rows, before_run], items).unexpected == 1
    scoped = check(events, [*rows, before_run], items, run_orders=rows)
    assert scoped.ok, scoped.explanation


def test_a_refusal_that_committed_is_a_lie() -> None:
    events, rows = _clean()
    verdict = check(events, [*rows, OrderRow(3, "refused", 2, 1)], [ITEMS[0], ItemRow(2, 99, 100)])
    assert verdict.refused_present == 1
    assert not verdict.ok


def test_duplicates_and_stock_that_does_not_add_up() -> None:
    events, rows = _clean()
    verdict = check(events, [*rows, OrderRow(4, "ack", 1, 1)], ITEMS)
    assert verdict.duplicates == 1
    assert verdict.stock_violations == ("item 1: initial 100 != remaining 98 + sold 3",)
    assert not verdict.ok
    assert "LEDGER BROKEN" in verdict.explanation


def test_verdict_round_trips_through_json() -> None:
    events, rows = _clean()
    verdict = check(events, rows, [ItemRow(1, 90, 100)], torn_lines=1)
    data = json.loads(json.dumps(verdict.to_dict()))
    assert data["ok"] is False
    assert LedgerVerdict.from_dict(data) == verdict


def test_writer_flushes_each_line_and_reader_skips_a_torn_one(tmp_path: Path) -> None:
    writer = LedgerWriter(tmp_path / "ledger-1.jsonl", clock=lambda: 12.5)
    intent = OrderIntent(KEY, 3, 1)
    writer.sent(intent)
    assert writer.answered(intent, 201, _body()) == "acknowledged"
    # No close yet: a SIGTERM now would lose nothing already written.
    lines = (tmp_path / "ledger-1.jsonl").read_text().splitlines()
    assert [json.loads(line)["event"] for line in lines] == ["sent", "acknowledged"]
    writer.close()
    writer.sent(intent)  # after close: ignored, not an error
    (tmp_path / "ledger-2.jsonl").write_text('{"key": "x", "item_id": 1, "quan')
    events, torn = read_ledger(tmp_path)
    assert torn == 1
    assert [(e.event, e.order_id, e.t) for e in events] == [
        ("sent", None, 12.5),
        ("acknowledged", 11, 12.5),
    ]


def test_parse_lines_ignores_blank_lines() -> None:
    events, torn = parse_lines(
        ["", json.dumps({"key": "k", "item_id": 1, "quantity": 1, "event": "sent"})]
    )
    assert (len(events), torn) == (1, 0)


def test_a_broken_ledger_fails_the_ramp_whatever_else_it_showed() -> None:
    stages = hockey()
    run = RampRun(stages, [], 0)
    config = RampConfig(profile="breakpoint", peak_rps=300)
    tipping = find_tipping_point(stages, SLO_S)
    events, rows = _clean()
    holds = check(events, rows, ITEMS)
    broken = check(events, rows[1:], ITEMS)
    assert _verdict(run, tipping, False, config, None) is ExitCode.OK
    assert _verdict(run, tipping, False, config, holds) is ExitCode.OK
    assert _verdict(run, tipping, True, config, holds) is ExitCode.THRESHOLDS_BREACHED
    assert _verdict(run, tipping, False, config, broken) is ExitCode.DATA_LOST


def test_a_scenario_s_phases_are_read_as_one_ledger(tmp_path: Path) -> None:
    first, second = tmp_path / "fragile", tmp_path / "resilient"
    for folder, key in ((first, KEY), (second, KEY.replace("0", "1"))):
        folder.mkdir()
        writer = LedgerWriter(folder / "ledger-1.jsonl")
        writer.sent(OrderIntent(key, 3, 1))
        writer.close()
    events, torn = read_ledger(first, second)
    assert (sorted(e.key for e in events), torn) == (sorted([KEY, KEY.replace("0", "1")]), 0)
