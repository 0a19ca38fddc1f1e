"""Request bodies over a size limit get 413 with a :class:`~demo_service.problems.Problem` body.

Why not FastAPI's ``max_body_size``: its limiter sits outside every user middleware, and when
``Content-Length`` already declares too much it replaces whatever answer the app sends with a
plain-text 413, not the JSON error body the spec declares. This pure ASGI middleware does both
checks itself: a declared length over the limit is refused at the door, before the app runs
(placed before admission control, it never takes an admission slot), and a body without a
length (chunked) is counted as the app reads it and refused once it passes the limit.

A refusal at the door closes the connection (``Connection: close``), and closing a socket whose
receive buffer still holds unread body makes the kernel answer with a TCP reset. A client that
reads while it sends (curl) has the 413 by then; one that writes the whole body before reading
(Python's ``urllib``, many SDKs) gets the reset instead of the answer. So the 413 is sent at once
but not finished: the rest of the body is read and thrown away, up to :data:`DRAIN_MAX_BYTES`
and :data:`DRAIN_TIMEOUT_S`, and only then does the last (empty) body message let the server
close. Draining must happen before that last message: once a response is complete, uvicorn (h11
and httptools alike) closes the transport and answers ``receive()`` with ``http.disconnect``.
A body declared beyond the bound, or announced with ``Expect: 100-continue`` (that client sends
nothing until told to), is not drained: the connection closes right after the 413.
"""

from __future__ import annotations

import asyncio
import contextlib

from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

DRAIN_MAX_BYTES = 1024 * 1024
"""The largest refused body read to its end before closing. A fixed cap, not a multiple of the
limit: it bounds the work spent on a request already refused, which should not grow with the
limit. 1 MiB takes milliseconds on a LAN and covers the uploads a confused client sends by
mistake; a body declared beyond it is not worth reading, and its sender gets the reset."""
DRAIN_TIMEOUT_S = 2.0
"""How long a refused body may take to arrive (1 MiB at 4 Mbit/s). A client trickling its body
(slow loris) cannot hold the connection and its task longer than this; then it is closed."""


class BodyTooLarge(HTTPException):
    """Raised while the app reads a body that has passed the limit; FastAPI answers it as 413."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"request body exceeds the limit of {limit} bytes")


class BodyLimit:
    """413 for a request body over ``max_bytes``, declared or streamed."""

    def __init__(
        self,
        app: ASGIApp,
        max_bytes: int,
        *,
        drain_max_bytes: int = DRAIN_MAX_BYTES,
        drain_timeout_s: float = DRAIN_TIMEOUT_S,
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.drain_max_bytes = drain_max_bytes
        self.drain_timeout_s = drain_timeout_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        declared = headers.get("content-length", "")
        if declared.isdigit() and int(declared) > self.max_bytes:
            expects_continue = headers.get("expect", "").lower() == "100-continue"
            drain = not expects_continue and int(declared) <= self.drain_max_bytes
            await self._refuse(int(declared), drain, receive, send)
            return
        received = 0

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise BodyTooLarge(self.max_bytes)
            return message

        await self.app(scope, counted, send)

    async def _refuse(self, declared: int, drain: bool, receive: Receive, send: Send) -> None:
        """Send the whole 413 at once; read the body away (if ``drain``) before completing it."""
        detail = f"request body of {declared} bytes exceeds the limit of {self.max_bytes} bytes"
        # closed either way: a body not drained to its end must not be parsed as a request
        answer = JSONResponse({"detail": detail}, 413, {"Connection": "close"})
        await send({"type": "http.response.start", "status": 413, "headers": answer.raw_headers})
        await send({"type": "http.response.body", "body": answer.body, "more_body": True})
        if drain:
            await self._drain(receive)
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    async def _drain(self, receive: Receive) -> None:
        """Read and drop body messages until the last one, a disconnect, or the deadline.

        No byte count is needed: only a body declared within the bound is drained, and the
        server's ``Content-Length`` framing delivers no more than that.
        """
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self.drain_timeout_s):
                while True:
                    message = await receive()
                    if message["type"] != "http.request" or not message.get("more_body"):
                        return
