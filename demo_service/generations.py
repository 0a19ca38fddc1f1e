"""A resource swapped live for a new one, the old one closed once the last of its users is done.

The asyncpg pool (``db.py``) and the external API's client (``external.py``) cannot be resized
in place, so a live knob builds a new one and :meth:`Generations.swap` puts it in: new users get
the new one at once, each user keeps the one it started with to the end, and the old one is
closed only once nobody uses it — nothing in flight fails or hangs because of a swap.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Generic, TypeVar

T = TypeVar("T")


@dataclass(eq=False)
class _Generation(Generic[T]):
    """One resource and how many use it now."""

    resource: T
    users: int = 0
    retired: bool = False
    drained: asyncio.Event = field(default_factory=asyncio.Event)

    def leave(self) -> None:
        self.users -= 1
        if self.retired and self.users == 0:
            self.drained.set()


class Generations(Generic[T]):
    """The resource in use now, and the retired ones still closing."""

    def __init__(self, first: T, close: Callable[[T], Awaitable[None]]) -> None:
        self._current = _Generation(first)
        self._close = close
        self._retiring: set[asyncio.Task[None]] = set()

    @property
    def current(self) -> T:
        return self._current.resource

    @property
    def retiring(self) -> int:
        """Retired resources not closed yet (their last users are still at work)."""
        return len(self._retiring)

    @contextmanager
    def using(self) -> Iterator[T]:
        """The current resource, counted as used until the block ends. A plain ``with``: no
        await can come between picking the resource and counting its user."""
        generation = self._current
        generation.users += 1
        try:
            yield generation.resource
        finally:
            generation.leave()

    def swap(self, new: T) -> None:
        """Make ``new`` the current resource; the old one closes once its users are gone."""
        old, self._current = self._current, _Generation(new)
        old.retired = True
        if old.users == 0:
            old.drained.set()
        task = asyncio.create_task(self._retire(old))
        self._retiring.add(task)
        task.add_done_callback(self._retiring.discard)

    async def aclose(self) -> None:
        """Close the current resource, and wait for the retired ones to close."""
        await self._close(self._current.resource)
        await asyncio.gather(*self._retiring)

    async def _retire(self, old: _Generation[T]) -> None:
        await old.drained.wait()
        await self._close(old.resource)
