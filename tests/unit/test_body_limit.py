"""BodyLimit's refusal as ASGI messages: the 413 first, the body drained, then the end.

Pure logic: a scripted ``receive`` and a recording ``send``. That uvicorn turns these messages
into a 413 every client reads (no reset) is checked on a real server in
``tests/integration/test_body_limit_drain.py``.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from typing import Any

import pytest
from starlette.types import Message, Receive, Scope, Send

from demo_service.body_limit import BodyLimit, BodyTooLarge

LIMIT = 1_000


class Exchange:
    """A scripted client: ``receive`` hands out ``messages`` (then waits forever), ``send`` and
    ``receive`` calls are logged in one timeline."""

    def __init__(self, messages: Sequence[Message]) -> None:
        self._messages = list(messages)
        self.timeline: list[tuple[str, Message]] = []

    async def receive(self) -> Message:
        if not self._messages:
            await asyncio.Event().wait()  # a client that stopped sending
        message = self._messages.pop(0)
        self.timeline.append(("received", message))
        return message

    async def send(self, message: Message) -> None:
        self.timeline.append(("sent", message))

    @property
    def sent(self) -> list[Message]:
        return [message for kind, message in self.timeline if kind == "sent"]

    @property
    def received(self) -> int:
        return sum(kind == "received" for kind, _ in self.timeline)


async def _never_called(scope: Scope, receive: Receive, send: Send) -> None:
    raise AssertionError("a refused request must not reach the app")


def _scope(length: int | None, *extra: tuple[bytes, bytes]) -> Scope:
    headers = [(b"content-type", b"application/json"), *extra]
    if length is not None:
        headers.append((b"content-length", str(length).encode()))
    return {"type": "http", "method": "POST", "path": "/orders", "headers": headers}


def _chunks(total: int, size: int = 400) -> list[Message]:
    sizes = [size] * (total // size) + ([total % size] if total % size else [])
    return [
        {"type": "http.request", "body": b" " * n, "more_body": i < len(sizes) - 1}
        for i, n in enumerate(sizes)
    ]


async def _refuse(length: int, messages: Sequence[Message], *extra: Any, **knobs: Any) -> Exchange:
    exchange = Exchange(messages)
    limit = BodyLimit(_never_called, LIMIT, **knobs)
    await asyncio.wait_for(limit(_scope(length, *extra), exchange.receive, exchange.send), 5)
    return exchange


def _assert_whole_413(sent: list[Message], length: int) -> None:
    start, body, end = sent
    headers = dict(start["headers"])
    assert (start["status"], headers[b"connection"]) == (413, b"close")
    assert headers[b"content-type"] == b"application/json"
    assert int(headers[b"content-length"]) == len(body["body"])
    detail = json.loads(body["body"])["detail"]
    assert detail == f"request body of {length} bytes exceeds the limit of {LIMIT} bytes"
    assert body["more_body"] is True  # the answer is out before the drain starts
    assert end == {"type": "http.response.body", "body": b"", "more_body": False}


async def test_a_refused_body_is_read_to_its_end_between_the_413_and_its_close() -> None:
    body = _chunks(5_000)
    exchange = await _refuse(5_000, body)
    _assert_whole_413(exchange.sent, 5_000)
    kinds = [kind for kind, _ in exchange.timeline]
    assert kinds == ["sent", "sent", *["received"] * len(body), "sent"]


async def test_a_body_declared_beyond_the_drain_bound_is_not_read() -> None:
    exchange = await _refuse(5_000, _chunks(5_000), drain_max_bytes=4_999)
    _assert_whole_413(exchange.sent, 5_000)
    assert exchange.received == 0


async def test_a_client_waiting_for_100_continue_is_not_invited_to_send() -> None:
    exchange = await _refuse(5_000, _chunks(5_000), (b"expect", b"100-Continue"))
    _assert_whole_413(exchange.sent, 5_000)
    assert exchange.received == 0


async def test_a_client_that_leaves_mid_body_ends_the_drain() -> None:
    messages = [*_chunks(800), {"type": "http.disconnect"}]
    messages[-2]["more_body"] = True
    exchange = await _refuse(5_000, messages)
    _assert_whole_413(exchange.sent, 5_000)
    assert exchange.received == len(messages)


async def test_a_trickling_body_is_given_up_at_the_drain_deadline() -> None:
    first_chunk_only = _chunks(5_000)[:1]
    exchange = await _refuse(5_000, first_chunk_only, drain_timeout_s=0.05)
    _assert_whole_413(exchange.sent, 5_000)  # finished (closed) though the body never came
    assert exchange.received == 1


async def test_a_body_within_the_limit_reaches_the_app_untouched() -> None:
    seen: list[Message] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        seen.extend([await receive(), await receive()])

    exchange = Exchange(_chunks(LIMIT, size=500))
    await BodyLimit(app, LIMIT)(_scope(LIMIT), exchange.receive, exchange.send)
    assert [len(message["body"]) for message in seen] == [500, 500]
    assert exchange.sent == []


async def test_a_chunked_body_past_the_limit_is_refused_as_the_app_reads_it() -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        while (await receive())["more_body"]:
            pass

    exchange = Exchange(_chunks(LIMIT + 1, size=500))
    with pytest.raises(BodyTooLarge) as refused:
        await BodyLimit(app, LIMIT)(_scope(None), exchange.receive, exchange.send)
    assert refused.value.status_code == 413
    assert exchange.received == 3
