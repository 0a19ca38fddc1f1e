"""The idempotency decision, and what a failed order promises, as pure logic over fakes."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Coroutine
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any, cast

import asyncpg
import pytest
from prometheus_client import CollectorRegistry

from demo_service.db import Database, PoolExhausted
from demo_service.metrics import ServiceMetrics
from demo_service.orders import (
    CommitInDoubt,
    KeyReused,
    Order,
    OrderRequest,
    place_order,
    replay_of,
    submit_order,
)
from demo_service.resilience.runtime import Resilience

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


# What a failure promises: nothing committed, unless the COMMIT itself was cut off.


class _Transaction:
    def __init__(self, connection: _Connection) -> None:
        self.connection = connection

    async def __aenter__(self) -> None:
        return None

    async def __aexit__(self, kind: type[BaseException] | None, *_: object) -> None:
        if kind is None and self.connection.commit_error is not None:
            raise self.connection.commit_error


class _Connection:
    """Just enough of an asyncpg connection for one order transaction."""

    def __init__(
        self,
        commit_error: Exception | None = None,
        update_error: Exception | None = None,
        stored: Order | None = None,
    ) -> None:
        self.commit_error, self.update_error, self.stored = commit_error, update_error, stored

    def transaction(self) -> _Transaction:
        return _Transaction(self)

    async def fetchrow(self, query: str, *args: object) -> dict[str, object] | None:
        if "INSERT" in query:
            return {**STORED.__dict__, "idempotency_key": args[0]}
        return None if self.stored is None else dict(self.stored.__dict__)

    async def fetchval(self, query: str, *args: object) -> int:
        return 10

    async def execute(self, query: str, *args: object) -> None:
        if self.update_error is not None:
            raise self.update_error


def _place(connection: _Connection) -> Coroutine[Any, Any, tuple[Order, bool]]:
    return place_order(cast(asyncpg.Connection, connection), OrderRequest(3, 2, KEY))


@pytest.mark.parametrize(
    "error", [ConnectionResetError("reset"), asyncpg.ConnectionDoesNotExistError("gone")]
)
async def test_a_commit_cut_off_is_in_doubt(error: Exception) -> None:
    with pytest.raises(CommitInDoubt) as caught:
        await _place(_Connection(commit_error=error))
    assert caught.value.__cause__ is error
    assert isinstance(caught.value, ConnectionError)  # retried, and answered 503


async def test_a_commit_the_server_refused_is_definite() -> None:
    with pytest.raises(asyncpg.SerializationError):
        await _place(_Connection(commit_error=asyncpg.SerializationError("conflict")))


async def test_a_connection_lost_before_the_commit_is_definite() -> None:
    with pytest.raises(asyncpg.ConnectionDoesNotExistError):
        await _place(_Connection(update_error=asyncpg.ConnectionDoesNotExistError("gone")))


class _Database:
    """Hands out one scripted connection (or raises one error) per attempt."""

    def __init__(self, *attempts: _Connection | Exception) -> None:
        self.attempts = list(attempts)

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[_Connection]:
        next_one = self.attempts.pop(0)
        if isinstance(next_one, Exception):
            raise next_one
        yield next_one


async def _submit(*attempts: _Connection | Exception) -> tuple[Order, bool]:
    resilience = Resilience(ServiceMetrics(CollectorRegistry()).resilience, "fragile")
    db = cast(Database, _Database(*attempts))
    return await submit_order(db, resilience, OrderRequest(3, 2, KEY))


async def test_doubt_then_a_failure_before_the_lookup_stays_in_doubt() -> None:
    doubt = _Connection(commit_error=ConnectionResetError("reset"))
    with pytest.raises(CommitInDoubt):
        await _submit(doubt, PoolExhausted(0.25))


async def test_doubt_resolved_by_the_retry_is_a_replay() -> None:
    doubt = _Connection(commit_error=ConnectionResetError("reset"))
    order, created = await _submit(doubt, _Connection(stored=STORED))
    assert (order, created) == (STORED, False)


async def test_without_doubt_a_failure_keeps_its_own_answer() -> None:
    with pytest.raises(PoolExhausted):
        await _submit(PoolExhausted(0.25))
