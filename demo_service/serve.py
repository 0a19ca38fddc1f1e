"""Start one of brink's apps the same way: validated settings first, then one uvicorn worker.

Shutdown is graceful and bounded for every app: on SIGTERM (or Ctrl-C) uvicorn closes the
listening socket at once, so no new connection is admitted, closes idle keep-alive connections,
and lets the requests in flight finish for up to ``BRINK_SERVER__DRAIN_TIMEOUT_S``; whatever is
still running then is cancelled and the lifespan closes the pool and clients. Without that bound
uvicorn waits forever, and one request hanging on a dependency keeps the process alive. A
request cut at the deadline is answered 503 (:class:`AnswerWhenCut`), not uvicorn's bare 500.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable
from typing import Any

import uvicorn
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from demo_service.settings import Settings, SettingsError, load_settings

_CUT = {"detail": "the server is shutting down and could not finish this request in time"}


class AnswerWhenCut:
    """Pure ASGI: a request cancelled before its response started gets 503 + ``Retry-After``.

    Within an app, deadlines turn cancellation into ``TimeoutError`` and a client that leaves is
    an ``http.disconnect`` message, so a cancellation that reaches this outermost layer is
    uvicorn cutting what is left at the drain deadline. Re-raised, it would become a 500 and a
    traceback in the log; the request's task is ending anyway, so it is acknowledged
    (``uncancel``) and the client told to retry elsewhere or later, on a closed connection.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracked(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, tracked)
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if started or task is None:
                raise
            task.uncancel()
            headers = {"Retry-After": "1", "Connection": "close"}
            await JSONResponse(_CUT, 503, headers)(scope, receive, send)


def serve(
    name: str,
    build: Callable[[Settings], Any],
    listener: Callable[[Settings], tuple[str, int]],
    **uvicorn_options: Any,
) -> None:
    """Run ``build(settings)`` on ``listener(settings)``; a bad setting exits 2 with one line.

    ``uvicorn_options`` go to :func:`uvicorn.run`; an explicit ``timeout_graceful_shutdown``
    there replaces the drain deadline of the settings.
    """
    try:
        settings = load_settings()
    except SettingsError as exc:
        print(f"{name}: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    host, port = listener(settings)
    options = {"timeout_graceful_shutdown": settings.server.drain_timeout_s, **uvicorn_options}
    uvicorn.run(
        AnswerWhenCut(build(settings)),
        host=host,
        port=port,
        access_log=False,
        log_level="warning",
        **options,
    )
