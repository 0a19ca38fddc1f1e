"""The request mix: which requests a virtual client sends, and how each answer is checked.

Pure: a :class:`Mix` turns a random source into :class:`RequestSpec` values; the load
generator sends them. A 2xx whose body is wrong is a failure (``check``), not a success.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from loadtests.ledger import OrderIntent

Check = Callable[[int, Any], str | None]
"""``(status, parsed JSON body) -> reason it is wrong, or None``."""

KINDS = ("item", "order", "quote", "cpu")
DEFAULT_WEIGHTS: Mapping[str, int] = {"item": 6, "order": 2, "quote": 1, "cpu": 1}


@dataclass(frozen=True)
class RequestSpec:
    kind: str
    method: str
    path: str
    name: str
    """The label in Locust's statistics: the route template, never the raw path."""
    check: Check
    json: dict[str, Any] | None = None
    headers: dict[str, str] = field(default_factory=dict)
    order: OrderIntent | None = None
    """For orders: what the ledger records (the key every attempt reuses)."""


def _expect(status: int, expected: tuple[int, ...]) -> str | None:
    return None if status in expected else f"status {status}"


def _item_check(item_id: int) -> Check:
    def check(status: int, body: Any) -> str | None:
        problem = _expect(status, (200,))
        if problem is None and (not isinstance(body, dict) or body.get("id") != item_id):
            problem = f"body is not item {item_id}"
        return problem

    return check


def _order_check(item_id: int, key: str) -> Check:
    def check(status: int, body: Any) -> str | None:
        problem = _expect(status, (200, 201))
        if problem is None and (
            not isinstance(body, dict)
            or body.get("idempotency_key") != key
            or body.get("item_id") != item_id
        ):
            problem = "body is not the order sent"
        return problem

    return check


def _quote_check(item_id: int) -> Check:
    def check(status: int, body: Any) -> str | None:
        problem = _expect(status, (200,))
        if problem is None and (
            not isinstance(body, dict)
            or body.get("item_id") != item_id
            or not isinstance(body.get("total_cents"), int)
        ):
            problem = f"body is not a quote for item {item_id}"
        return problem

    return check


def _cpu_check(status: int, body: Any) -> str | None:
    problem = _expect(status, (200,))
    if problem is None and (not isinstance(body, dict) or len(str(body.get("digest"))) != 64):
        problem = "body has no digest"
    return problem


def parse_weights(text: str) -> dict[str, int]:
    """``"item=6,order=2,quote=1,cpu=1"`` → weights; unnamed kinds get 0."""
    weights = dict.fromkeys(KINDS, 0)
    for part in filter(None, (chunk.strip() for chunk in text.split(","))):
        name, sep, value = part.partition("=")
        if not sep or name not in KINDS or not value.strip().isdigit():
            raise ValueError(
                f"bad mix entry {part!r}: expected KIND=INT with KIND one of {', '.join(KINDS)}"
            )
        weights[name] = int(value)
    if sum(weights.values()) == 0:
        raise ValueError("the mix needs at least one kind with a positive weight")
    return weights


class Mix:
    """Weighted request kinds over the backend's routes, with hot items for orders."""

    def __init__(
        self,
        weights: Mapping[str, int] = DEFAULT_WEIGHTS,
        items: int = 1_000,
        hot_items: int = 5,
        hot_share: float = 0.5,
    ) -> None:
        unknown = set(weights) - set(KINDS)
        if unknown:
            raise ValueError(f"unknown request kinds {sorted(unknown)}; known: {KINDS}")
        if items < 1 or not 1 <= hot_items <= items or not 0 <= hot_share <= 1:
            raise ValueError("need 1 <= hot_items <= items and 0 <= hot_share <= 1")
        self.kinds = [kind for kind in KINDS if weights.get(kind, 0) > 0]
        self.weights = [weights[kind] for kind in self.kinds]
        self.items = items
        self.hot_items = hot_items
        self.hot_share = hot_share

    def shares(self) -> dict[str, float]:
        """Each kind's share of the requests (sums to 1)."""
        total = sum(self.weights)
        return {kind: weight / total for kind, weight in zip(self.kinds, self.weights, strict=True)}

    def _item(self, rng: random.Random) -> int:
        return rng.randint(1, self.items)

    def _order_item(self, rng: random.Random) -> int:
        if rng.random() < self.hot_share:
            return rng.randint(1, self.hot_items)  # popular items: hot rows, lock waits
        return self._item(rng)

    def next(self, rng: random.Random) -> RequestSpec:
        kind = rng.choices(self.kinds, self.weights)[0]
        return self.build(kind, rng)

    def build(self, kind: str, rng: random.Random) -> RequestSpec:
        if kind == "item":
            item_id = self._item(rng)
            return RequestSpec(
                kind, "GET", f"/items/{item_id}", "GET /items/{item_id}", _item_check(item_id)
            )
        if kind == "order":
            item_id = self._order_item(rng)
            key = str(uuid.UUID(int=rng.getrandbits(128), version=4))
            return RequestSpec(
                kind,
                "POST",
                "/orders",
                "POST /orders",
                _order_check(item_id, key),
                json={"item_id": item_id, "quantity": 1},
                headers={"Idempotency-Key": key},
                order=OrderIntent(key, item_id, 1),
            )
        if kind == "quote":
            item_id = self._item(rng)
            return RequestSpec(
                kind,
                "GET",
                f"/items/{item_id}/shipping-quote",
                "GET /items/{item_id}/shipping-quote",
                _quote_check(item_id),
            )
        if kind == "cpu":
            return RequestSpec(kind, "GET", "/cpu", "GET /cpu", _cpu_check)
        raise ValueError(f"unknown request kind {kind!r}")
