"""The request mix: weights, hot items, and the functional checks on answers."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from loadtests.mix import Mix, parse_weights


def test_kinds_follow_their_weights() -> None:
    mix = Mix({"item": 6, "order": 2, "quote": 1, "cpu": 1})
    rng = random.Random(1)
    counts = Counter(mix.next(rng).kind for _ in range(10_000))
    assert counts["item"] / 10_000 == pytest.approx(0.6, abs=0.02)
    assert counts["order"] / 10_000 == pytest.approx(0.2, abs=0.02)
    assert mix.shares() == {"item": 0.6, "order": 0.2, "quote": 0.1, "cpu": 0.1}


def test_orders_carry_fresh_keys_and_favour_hot_items() -> None:
    mix = Mix({"order": 1}, items=1000, hot_items=5, hot_share=0.5)
    rng = random.Random(2)
    specs = [mix.next(rng) for _ in range(2_000)]
    keys = {spec.headers["Idempotency-Key"] for spec in specs}
    assert len(keys) == 2_000
    hot = sum(1 for spec in specs if spec.json is not None and spec.json["item_id"] <= 5)
    assert 0.45 < hot / 2_000 < 0.56


def test_checks_catch_a_2xx_with_the_wrong_body() -> None:
    mix = Mix({"item": 1})
    spec = mix.build("item", random.Random(3))
    item_id = int(spec.path.rsplit("/", 1)[1])
    assert spec.check(200, {"id": item_id}) is None
    assert spec.check(200, {"id": item_id + 1}) is not None
    assert spec.check(200, None) is not None
    assert spec.check(503, {"detail": "x"}) == "status 503"


def test_order_check_wants_the_order_that_was_sent() -> None:
    spec = Mix({"order": 1}).build("order", random.Random(4))
    assert spec.json is not None
    body = {"idempotency_key": spec.headers["Idempotency-Key"], "item_id": spec.json["item_id"]}
    assert spec.check(201, body) is None
    assert spec.check(200, body) is None  # a replay is a correct answer
    assert spec.check(201, {**body, "idempotency_key": "other"}) is not None


def test_orders_tell_the_ledger_what_they_ask_for_and_nothing_else_does() -> None:
    mix = Mix()
    rng = random.Random(6)
    for spec in (mix.next(rng) for _ in range(200)):
        if spec.kind != "order":
            assert spec.order is None
            continue
        assert spec.order is not None
        assert spec.json is not None
        assert spec.order.key == spec.headers["Idempotency-Key"]
        assert (spec.order.item_id, spec.order.quantity) == (spec.json["item_id"], 1)


def test_labels_are_route_templates() -> None:
    mix = Mix()
    rng = random.Random(5)
    names = {mix.next(rng).name for _ in range(500)}
    assert names == {
        "GET /items/{item_id}",
        "POST /orders",
        "GET /items/{item_id}/shipping-quote",
        "GET /cpu",
    }


@pytest.mark.parametrize("text", ["item=x", "bogus=1", "item", "item=0,order=0"])
def test_bad_weights_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="mix"):
        parse_weights(text)


def test_weights_parse() -> None:
    assert parse_weights("item=3, cpu=1") == {"item": 3, "order": 0, "quote": 0, "cpu": 1}
