"""Deadlines for the three waiting stages, built once as values; ``None`` means no deadline.

Client side, a :class:`Deadline` scope is ``asyncio.timeout``: ``async with deadlines.external():``.
Server side, Postgres enforces ``statement_timeout`` per statement: set it for the whole pool
(:meth:`Deadline.server_settings` for ``asyncpg.create_pool(server_settings=...)``) or per
transaction (:meth:`Deadline.server_side` with a connection), which also turns Postgres's
cancellation into :class:`DeadlineExceeded`. Every expiry counts ``deadline_exceeded{stage}``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Literal, get_args

import asyncpg

from demo_service.metrics import ResilienceMetrics

Stage = Literal["db_acquire", "db_statement", "external"]

_STATEMENT_TIMEOUT_MESSAGE = "statement timeout"  # Postgres: "canceling statement due to ..."


STAGES: tuple[Stage, ...] = get_args(Stage)
"""The stages a deadline bounds: the ``stage`` label of ``brink_deadline_exceeded_total``."""


class DeadlineExceeded(TimeoutError):
    """A stage ran past its deadline. Register a handler for it: its base is ``TimeoutError``."""

    def __init__(self, stage: Stage, seconds: float | None) -> None:
        limit = "" if seconds is None else f" of {seconds:g} s"
        super().__init__(f"{stage} deadline{limit} exceeded")
        self.stage = stage
        self.seconds = seconds


def is_statement_timeout(exc: BaseException) -> bool:
    """Postgres cancelled the statement because of ``statement_timeout`` (not a user's cancel)."""
    return isinstance(exc, asyncpg.QueryCanceledError) and _STATEMENT_TIMEOUT_MESSAGE in str(exc)


class Deadline:
    """One stage's time limit; ``seconds=None`` turns it off (every scope is then a no-op)."""

    def __init__(self, stage: Stage, seconds: float | None, metrics: ResilienceMetrics) -> None:
        if seconds is not None and seconds <= 0:
            raise ValueError(f"{stage} deadline must be positive or None, not {seconds!r}")
        self.stage: Stage = stage
        self.seconds = seconds
        self._metrics = metrics

    def __repr__(self) -> str:
        return f"Deadline({self.stage!r}, {self.seconds!r})"

    def _exceeded(self) -> DeadlineExceeded:
        self._metrics.deadline_exceeded.labels(self.stage).inc()
        return DeadlineExceeded(self.stage, self.seconds)

    @asynccontextmanager
    async def __call__(self) -> AsyncIterator[None]:
        """Cancel the block after ``seconds``; raise :class:`DeadlineExceeded` when it did."""
        if self.seconds is None:
            yield
            return
        timer = asyncio.timeout(self.seconds)
        try:
            async with timer:
                yield
        except TimeoutError as exc:
            if not timer.expired():  # someone else's timeout (or a nested deadline): not ours
                raise
            raise self._exceeded() from exc

    def server_settings(self) -> dict[str, str]:
        """``statement_timeout`` for every session of a pool; empty when off."""
        return {} if self.seconds is None else {"statement_timeout": self._milliseconds()}

    @asynccontextmanager
    async def server_side(
        self, connection: asyncpg.Connection | None = None
    ) -> AsyncIterator[None]:
        """Postgres's statement timeout → :class:`DeadlineExceeded` (same stage, counted).

        With a connection (inside a transaction) it first sets ``statement_timeout`` for that
        transaction only, like ``SET LOCAL``; without one it relies on the pool-level setting.
        """
        if connection is not None and self.seconds is not None:
            if not connection.is_in_transaction():
                raise RuntimeError("a transaction-local statement_timeout needs a transaction")
            await connection.execute(
                "SELECT set_config('statement_timeout', $1, true)", self._milliseconds()
            )
        try:
            yield
        except asyncpg.QueryCanceledError as exc:
            if not is_statement_timeout(exc):
                raise
            raise self._exceeded() from exc

    def _milliseconds(self) -> str:
        assert self.seconds is not None
        return f"{max(1, round(self.seconds * 1000))}ms"


class Deadlines:
    """The three stages' deadlines, built once (from settings or a preset) and then read-only."""

    def __init__(
        self,
        metrics: ResilienceMetrics,
        *,
        db_acquire: float | None,
        db_statement: float | None,
        external: float | None,
    ) -> None:
        self.db_acquire = Deadline("db_acquire", db_acquire, metrics)
        self.db_statement = Deadline("db_statement", db_statement, metrics)
        self.external = Deadline("external", external, metrics)

    @classmethod
    def off(cls, metrics: ResilienceMetrics) -> Deadlines:
        """No deadline anywhere: the fragile preset."""
        return cls(metrics, db_acquire=None, db_statement=None, external=None)

    def __repr__(self) -> str:
        return f"Deadlines({self.db_acquire!r}, {self.db_statement!r}, {self.external!r})"
