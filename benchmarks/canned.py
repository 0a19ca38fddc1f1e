"""A target far faster than the demo service: every request gets the same canned 200 JSON answer.

``python -m benchmarks.canned --port N`` serves HTTP/1.1 keep-alive on 127.0.0.1 with a raw
asyncio :class:`asyncio.Protocol` (uvloop when installed), ignoring method and path. The body
passes the ``cpu`` check of :mod:`loadtests.mix`, so a ``--mix cpu=1`` run counts every answer
as a success: the load generator, not the target, is what runs out of CPU first.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
from collections.abc import Sequence
from typing import cast

HOST = "127.0.0.1"
BODY = json.dumps({"iterations": 1, "digest": "0" * 64}).encode()
"""Passes ``loadtests.mix``'s check for ``GET /cpu``."""
_RESPONSE = (
    b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: "
    + str(len(BODY)).encode()
    + b"\r\n\r\n"
    + BODY
)
_MAX_HEADER_BYTES = 65536


def _content_length(head: bytes) -> int:
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return int(value.strip() or b"0")
    return 0


class CannedProtocol(asyncio.Protocol):
    """Answers each complete request (head plus ``content-length`` body) with the canned 200."""

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)  # uvloop's is no subclass

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        answers = 0
        while (end := self._buffer.find(b"\r\n\r\n")) >= 0:
            try:
                total = end + 4 + _content_length(bytes(self._buffer[:end]))
            except ValueError:
                total = -1
            if total < 0:
                self._close()
                return
            if len(self._buffer) < total:
                break
            del self._buffer[:total]
            answers += 1
        if len(self._buffer) > _MAX_HEADER_BYTES:
            self._close()
        elif answers and self._transport is not None:
            self._transport.write(_RESPONSE * answers)

    def _close(self) -> None:
        if self._transport is not None:
            self._transport.close()


async def serve(port: int, host: str = HOST) -> None:
    """Serve until SIGTERM or SIGINT."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    server = await loop.create_server(CannedProtocol, host, port, backlog=4096)
    async with server:
        await stop.wait()


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.canned", description="Answer every HTTP request with 200 JSON."
    )
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)
    try:
        import uvloop
    except ImportError:
        asyncio.run(serve(args.port))
    else:
        uvloop.run(serve(args.port))


if __name__ == "__main__":
    main()
