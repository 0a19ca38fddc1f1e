"""Every client sees the JSON 413, also one that writes its whole body before reading.

Real uvicorn servers (the demo service and the slow API, as ``python -m``). Before the drain, a
client writing a 1 MiB body in one go (Python's ``urllib``; the raw socket below) was reset: the
server closed with the body unread in its receive buffer, and the kernel answered with a TCP RST
(the raw-socket case failed 10 times out of 10). Beyond the drain bound, and for a body that
trickles in, the connection is still closed, within a deadline.
"""

from __future__ import annotations

import io
import json
import socket
import time
import urllib.error
import urllib.request
from urllib.parse import urlsplit

import httpx2
import pytest

from demo_service.body_limit import DRAIN_MAX_BYTES, DRAIN_TIMEOUT_S
from tests.support import Served

pytestmark = pytest.mark.integration

ROUTES = [("service", "POST", "/orders"), ("slow API", "PUT", "/control")]
DEADLINE_S = 10.0
"""Per socket operation, and for a refused connection to be closed."""


@pytest.fixture(scope="module")
def apps(service: Served, slow_api: Served) -> dict[str, Served]:
    return {"service": service, "slow API": slow_api}


def _connect(base_url: str) -> socket.socket:
    address = urlsplit(base_url)
    assert address.hostname is not None
    assert address.port is not None
    return socket.create_connection((address.hostname, address.port), timeout=DEADLINE_S)


def _head(method: str, path: str, length: int, *extra: str) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: brink", "Content-Type: application/json"]
    lines += [f"Content-Length: {length}", *extra]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def _read_to_close(conn: socket.socket) -> bytes:
    """Everything the server sends until it closes; fails if it is still open at the deadline."""
    data = b""
    while chunk := conn.recv(65_536):
        data += chunk
    return data


def _assert_json_413(raw: bytes, length: int) -> None:
    head, _, body = raw.partition(b"\r\n\r\n")
    status, *header_lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.lower().split(": ", 1) for line in header_lines)
    assert status.startswith("HTTP/1.1 413"), raw[:200]
    assert (headers["content-type"], headers["connection"]) == ("application/json", "close")
    assert len(body) == int(headers["content-length"])
    assert json.loads(body)["detail"].startswith(f"request body of {length} bytes exceeds")


@pytest.mark.parametrize(("app", "method", "path"), ROUTES)
def test_urllib_writing_the_whole_body_first_gets_the_json_413(
    apps: dict[str, Served], app: str, method: str, path: str
) -> None:
    body = b" " * DRAIN_MAX_BYTES
    # in one write (headers and body together), and streamed from a file in 8 KiB blocks
    for data in [body] * 3 + [io.BytesIO(body) for _ in range(3)]:
        request = urllib.request.Request(
            apps[app].base_url + path,
            data=data,
            method=method,
            headers={"Content-Type": "application/json", "Content-Length": str(len(body))},
        )
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(request, timeout=DEADLINE_S)
        with refused.value as answer:
            assert answer.code == 413
            assert answer.headers["Content-Type"] == "application/json"
            detail = json.loads(answer.read())["detail"]
        assert detail.startswith(f"request body of {DRAIN_MAX_BYTES} bytes exceeds the limit")


@pytest.mark.parametrize(("app", "method", "path"), ROUTES)
def test_a_raw_socket_writing_everything_then_reading_gets_the_json_413(
    apps: dict[str, Served], app: str, method: str, path: str
) -> None:
    with _connect(apps[app].base_url) as conn:
        conn.sendall(_head(method, path, DRAIN_MAX_BYTES) + b" " * DRAIN_MAX_BYTES)
        _assert_json_413(_read_to_close(conn), DRAIN_MAX_BYTES)
    assert httpx2.get(apps[app].base_url + "/healthz", timeout=DEADLINE_S).status_code == 200


def _write_until_refused(conn: socket.socket, total: int) -> OSError | None:
    """Write ``total`` bytes of body; the error that stopped it (None: all were taken)."""
    block = b" " * 65_536
    try:
        for _ in range(total // len(block)):
            conn.sendall(block)
    except (ConnectionResetError, BrokenPipeError) as exc:
        return exc
    return None


def test_a_body_far_beyond_the_drain_bound_is_closed_on_without_a_hang(service: Served) -> None:
    declared = 64 * DRAIN_MAX_BYTES
    started = time.monotonic()
    with _connect(service.base_url) as conn:
        conn.sendall(_head("POST", "/orders", declared))
        # the server reads none of it: a write fails once the buffers between us are full
        assert _write_until_refused(conn, declared) is not None
    assert time.monotonic() - started < DEADLINE_S


def test_a_trickling_body_gets_the_413_at_once_and_is_closed_at_the_drain_deadline(
    service: Served,
) -> None:
    with _connect(service.base_url) as conn:
        started = time.monotonic()
        conn.sendall(_head("POST", "/orders", DRAIN_MAX_BYTES) + b" " * 1_000)  # then nothing
        first = conn.recv(65_536)
        answered_s = time.monotonic() - started
        raw = first + _read_to_close(conn)
        closed_s = time.monotonic() - started
    _assert_json_413(raw, DRAIN_MAX_BYTES)
    assert answered_s < DRAIN_TIMEOUT_S <= closed_s + 0.1
    assert closed_s < DRAIN_TIMEOUT_S + DEADLINE_S


def test_a_client_expecting_100_continue_gets_the_413_and_the_close_at_once(
    service: Served,
) -> None:
    with _connect(service.base_url) as conn:
        started = time.monotonic()
        conn.sendall(_head("POST", "/orders", DRAIN_MAX_BYTES, "Expect: 100-continue"))
        raw = _read_to_close(conn)  # no "100 Continue": the body is not wanted
        closed_s = time.monotonic() - started
    _assert_json_413(raw, DRAIN_MAX_BYTES)
    assert closed_s < DRAIN_TIMEOUT_S
