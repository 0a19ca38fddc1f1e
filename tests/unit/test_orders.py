"""The idempotency decision, as pure logic."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest

from demo_service.orders import KeyReused, Order, OrderRequest, replay_of

KEY = uuid.uuid4()
STORED = Order(id=7, item_id=3, quantity=2, idempotency_key=KEY, created_at=datetime.now(UTC))


def test_a_new_key_is_not_a_replay() -> None:
    assert replay_of(None, OrderRequest(3, 2, KEY)) is None


def test_the_same_request_again_replays_the_stored_order() -> None:
    assert replay_of(STORED, OrderRequest(3, 2, KEY)) is STORED


@pytest.mark.parametrize(("item_id", "quantity"), [(4, 2), (3, 1), (4, 5)])
def test_the_key_with_another_request_is_refused(item_id: int, quantity: int) -> None:
    with pytest.raises(KeyReused, match=str(KEY)):
        replay_of(STORED, OrderRequest(item_id, quantity, KEY))
