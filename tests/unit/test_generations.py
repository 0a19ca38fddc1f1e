"""Generations: a swap hands new users the new resource at once and closes the old one only
once its last user is done; no user is moved, nothing is closed twice."""

from __future__ import annotations

import asyncio

from demo_service.generations import Generations


class Closed:
    def __init__(self) -> None:
        self.names: list[object] = []

    async def __call__(self, name: object) -> None:
        self.names.append(name)


async def _settled() -> None:
    """Let the retiring tasks run as far as they can."""
    for _ in range(3):
        await asyncio.sleep(0)


async def test_an_unused_resource_closes_at_once_on_a_swap() -> None:
    closed = Closed()
    generations = Generations("first", closed)
    generations.swap("second")
    assert generations.current == "second"
    await _settled()
    assert closed.names == ["first"]
    assert generations.retiring == 0


async def test_a_user_keeps_its_resource_to_the_end_and_then_it_closes() -> None:
    closed = Closed()
    generations = Generations("first", closed)
    with generations.using() as old:
        generations.swap("second")
        with generations.using() as new:
            assert (old, new) == ("first", "second")
        await _settled()
        assert closed.names == []  # "first" is still in use
        assert generations.retiring == 1
    await _settled()
    assert closed.names == ["first"]
    assert generations.retiring == 0


async def test_swaps_in_a_row_close_each_retired_resource_once_its_users_leave() -> None:
    closed = Closed()
    generations = Generations(0, closed)
    held = [generations.using() for _ in range(3)]
    for index, context in enumerate(held):
        assert context.__enter__() == index
        generations.swap(index + 1)
    await _settled()
    assert closed.names == []
    for context in reversed(held):
        context.__exit__(None, None, None)
        await _settled()
    assert closed.names == [2, 1, 0]
    assert generations.current == 3


async def test_a_user_that_fails_still_lets_its_resource_close() -> None:
    closed = Closed()
    generations = Generations("first", closed)
    try:
        with generations.using():
            generations.swap("second")
            raise asyncio.CancelledError
    except asyncio.CancelledError:
        pass
    await _settled()
    assert closed.names == ["first"]


async def test_aclose_closes_the_current_one_and_waits_for_the_retired() -> None:
    closed = Closed()
    generations = Generations("first", closed)
    release = asyncio.Event()

    async def user() -> None:
        with generations.using():
            await release.wait()

    task = asyncio.create_task(user())
    await _settled()
    generations.swap("second")
    closing = asyncio.create_task(generations.aclose())
    await _settled()
    assert closed.names == ["second"]
    assert not closing.done()  # "first" waits for its user
    release.set()
    await asyncio.wait_for(closing, timeout=5)
    await task
    assert closed.names == ["second", "first"]
