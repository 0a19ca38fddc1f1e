"""Request bodies over a size limit get 413 with a :class:`~demo_service.problems.Problem` body.

Why not FastAPI's ``max_body_size``: its limiter sits outside every user middleware, and when
``Content-Length`` already declares too much it replaces whatever answer the app sends with a
plain-text 413, not the JSON error body the spec declares. This pure ASGI middleware does both
checks itself: a declared length over the limit is refused at the door, before the app runs
(placed before admission control, it never takes an admission slot or reads a byte), and a body
without a length (chunked) is counted as the app reads it and refused once it passes the limit.
"""

from __future__ import annotations

from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send


class BodyTooLarge(HTTPException):
    """Raised while the app reads a body that has passed the limit; FastAPI answers it as 413."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"request body exceeds the limit of {limit} bytes")


class BodyLimit:
    """413 for a request body over ``max_bytes``, declared or streamed."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = Headers(scope=scope).get("content-length", "")
        if declared.isdigit() and int(declared) > self.max_bytes:
            detail = f"request body of {declared} bytes exceeds the limit of {self.max_bytes} bytes"
            headers = {"Connection": "close"}  # the unread body must not be taken for a request
            await JSONResponse({"detail": detail}, 413, headers)(scope, receive, send)
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
