"""Placing an order: one transaction, a row lock on the item, idempotent by client key.

The order is written and the stock decremented in the same transaction, and the caller
acknowledges it only after that transaction commits. A repeat of the same idempotency key
returns the first order and writes nothing; the same key with a different request is refused.

That makes the whole transaction safe to retry (:func:`submit_order`): when a connection is lost
after the commit was sent, the retry finds the committed order by its key and answers it as a
replay instead of writing it twice.

Every failure is a promise to the client: nothing was committed — except :class:`CommitInDoubt`
(503 ``database unavailable: CommitInDoubt``), raised when the connection broke while a COMMIT
was in flight and no later attempt found out how it ended. The load generator's ledger
(:mod:`loadtests.ledger`) relies on that promise to count a 503 as a refusal.

Every statement of the transaction runs under the live ``db_statement`` deadline (Postgres's
``statement_timeout``, local to the transaction), which also bounds the fault holds
(:class:`Holds`) and the wait for the item's row lock.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

import asyncpg

from demo_service.db import UNAVAILABLE_ERRORS, Database
from demo_service.resilience.deadlines import Deadline
from demo_service.resilience.runtime import Resilience


@dataclass(frozen=True)
class OrderRequest:
    item_id: int
    quantity: int
    idempotency_key: UUID


@dataclass(frozen=True)
class Order:
    id: int
    item_id: int
    quantity: int
    idempotency_key: UUID
    created_at: datetime


@dataclass(frozen=True)
class Holds:
    """Known holds inside the order transaction, set by the fault knobs."""

    extra_latency_s: float = 0.0
    """``pg_sleep`` before anything else: the connection is held, no lock is."""
    hot_row_lock_s: float = 0.0
    """``pg_sleep`` right after the item's ``SELECT … FOR UPDATE``: the row lock is held."""
    hot_items: int = 0
    """Items ``1..hot_items`` get the row-lock hold; others do not."""

    def row_lock_s(self, item_id: int) -> float:
        return self.hot_row_lock_s if item_id <= self.hot_items else 0.0


NO_HOLDS = Holds()


class ItemNotFound(Exception):
    def __init__(self, item_id: int) -> None:
        super().__init__(f"item {item_id} does not exist")


class OutOfStock(Exception):
    def __init__(self, item_id: int, requested: int, available: int) -> None:
        super().__init__(f"item {item_id} has {available} in stock, {requested} requested")
        self.available = available


class KeyReused(Exception):
    def __init__(self, key: UUID) -> None:
        super().__init__(f"Idempotency-Key {key} was already used for a different order")


def replay_of(existing: Order | None, request: OrderRequest) -> Order | None:
    """The stored order if ``request`` repeats it, None if the key is new.

    Raises :class:`KeyReused` when the key belongs to an order for something else.
    """
    if existing is None:
        return None
    if (existing.item_id, existing.quantity) != (request.item_id, request.quantity):
        raise KeyReused(request.idempotency_key)
    return existing


_COLUMNS = "id, item_id, quantity, idempotency_key, created_at"
_FIND = f"SELECT {_COLUMNS} FROM orders WHERE idempotency_key = $1"
_LOCK_ITEM = "SELECT stock FROM items WHERE id = $1 FOR UPDATE"
_INSERT = f"""
INSERT INTO orders (idempotency_key, item_id, quantity) VALUES ($1, $2, $3)
ON CONFLICT (idempotency_key) DO NOTHING
RETURNING {_COLUMNS}
"""
_DECREMENT = "UPDATE items SET stock = stock - $2 WHERE id = $1"


async def _find(connection: asyncpg.Connection, key: UUID) -> Order | None:
    row = await connection.fetchrow(_FIND, key)
    return None if row is None else Order(**dict(row))


class CommitInDoubt(ConnectionError):
    """The connection broke while COMMIT was in flight: the order may or may not be stored.

    A :class:`ConnectionError`, so the retry policy tries again (the retry finds a committed
    order by its key) and the error handlers answer 503 ``database unavailable``.
    """


def _definite(exc: Exception) -> bool:
    """The server refused the COMMIT itself (it answered): nothing was stored."""
    return isinstance(exc, asyncpg.PostgresError) and not isinstance(exc, UNAVAILABLE_ERRORS)


class _LostRace(Exception):
    """A concurrent request with the same key committed first."""


async def submit_order(
    db: Database, resilience: Resilience, request: OrderRequest, holds: Holds = NO_HOLDS
) -> tuple[Order, bool]:
    """Place ``request`` with a checkout of its own per attempt, retried on transient DB errors."""
    statement = resilience.deadlines.db_statement
    in_doubt = False

    async def attempt() -> tuple[Order, bool]:
        nonlocal in_doubt
        try:
            async with db.connection() as connection:
                return await place_order(connection, request, holds, statement)
        except CommitInDoubt:
            in_doubt = True
            raise

    try:
        return await resilience.call_db(attempt)
    except (ItemNotFound, OutOfStock, KeyReused, CommitInDoubt):
        raise  # a domain answer comes after the lookup by key: an earlier commit would show
    except Exception as exc:
        if in_doubt:  # a later attempt failed before it could look the order up
            raise CommitInDoubt(f"commit of order {request.idempotency_key} in doubt") from exc
        raise


async def place_order(
    connection: asyncpg.Connection,
    request: OrderRequest,
    holds: Holds = NO_HOLDS,
    statement: Deadline | None = None,
) -> tuple[Order, bool]:
    """Place ``request``; returns the order and whether it was created now (False: a replay)."""
    try:
        return await _place(connection, request, holds, statement)
    except _LostRace:
        replay = replay_of(await _find(connection, request.idempotency_key), request)
        if replay is None:  # the winner cannot vanish: its row was committed
            raise RuntimeError("idempotency race lost to an order that is not there") from None
        return replay, False


async def _sleep(connection: asyncpg.Connection, seconds: float) -> None:
    if seconds > 0:
        await connection.execute("SELECT pg_sleep($1)", seconds)


async def _place(
    connection: asyncpg.Connection,
    request: OrderRequest,
    holds: Holds,
    statement: Deadline | None,
) -> tuple[Order, bool]:
    committing = False
    try:
        async with connection.transaction():
            if statement is None:
                result = await _write(connection, request, holds)
            else:
                async with statement.server_side(connection):
                    result = await _write(connection, request, holds)
            committing = True  # leaving the block sends COMMIT
    except Exception as exc:
        if committing and not _definite(exc):
            raise CommitInDoubt(f"commit of order {request.idempotency_key} in doubt") from exc
        raise
    return result


async def _write(
    connection: asyncpg.Connection, request: OrderRequest, holds: Holds
) -> tuple[Order, bool]:
    await _sleep(connection, holds.extra_latency_s)
    replay = replay_of(await _find(connection, request.idempotency_key), request)
    if replay is not None:
        return replay, False
    stock = await connection.fetchval(_LOCK_ITEM, request.item_id)
    if stock is None:
        raise ItemNotFound(request.item_id)
    await _sleep(connection, holds.row_lock_s(request.item_id))
    if stock < request.quantity:
        raise OutOfStock(request.item_id, request.quantity, stock)
    row = await connection.fetchrow(
        _INSERT, request.idempotency_key, request.item_id, request.quantity
    )
    if row is None:
        raise _LostRace
    await connection.execute(_DECREMENT, request.item_id, request.quantity)
    return Order(**dict(row)), True
