"""The generator's client timeout bounds a whole request, and nothing retries behind its back.

A server that trickles its answer one byte at a time never lets a per-operation socket timeout
fire, so without a deadline per attempt a "1 s timeout" request can take as long as the server
likes; and geventhttpclient's UserAgent re-sends a timed-out GET up to three times unless told
not to — together they made a stuck service's latency read 26 s instead of failing at 1 s, and
"--client-retries none" retry. The engine runs in a child process: Locust monkey-patches the
standard library when imported.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator

import pytest

CHILD = """
import json, sys, time
from locust.env import Environment
from loadtests.arrivals import ArrivalEngine
from loadtests.mix import Mix, parse_weights
from loadtests.series import Series
import random

events = []
env = Environment()
env.events.request.add_listener(lambda **kw: events.append(repr(kw.get("exception"))))
engine = ArrivalEngine(env, sys.argv[1], Mix(parse_weights("item=1")), Series(0.5), 1.0, 10)
started = time.perf_counter()
kind, status, body = engine._attempt(engine.mix.next(random.Random(1)))
print(json.dumps({"kind": kind, "status": status, "elapsed_s": time.perf_counter() - started,
                  "events": events}))
"""


def _trickle(conn: socket.socket, stop: threading.Event) -> None:
    """Read the request, then answer one header byte every 0.2 s, forever (until stopped)."""
    with conn:
        conn.recv(65536)
        for byte in b"HTTP/1.1 200 OK\r\nX-Slow: " + b"a" * 1000:
            if stop.is_set():
                return
            try:
                conn.sendall(bytes([byte]))
            except OSError:
                return
            time.sleep(0.2)


class Trickler:
    """A server on a free port whose every answer trickles; counts the connections it got."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        self.connections = 0
        self.stop = threading.Event()
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while not self.stop.is_set():
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=_trickle, args=(conn, self.stop), daemon=True).start()

    def close(self) -> None:
        self.stop.set()
        self.listener.close()


@pytest.fixture
def trickler() -> Iterator[Trickler]:
    server = Trickler()
    yield server
    server.close()


def test_a_trickling_answer_times_out_at_the_client_timeout(trickler: Trickler) -> None:
    child = subprocess.run(
        [sys.executable, "-c", CHILD, trickler.url],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    result = json.loads(child.stdout.strip().splitlines()[-1])
    assert result["kind"] == "timeout", result
    assert result["elapsed_s"] < 3.0, result  # 1 s timeout; without the deadline: 200+ s
    assert len(result["events"]) == 1, result  # one attempt, one request in Locust's stats
    assert "timed out" in result["events"][0], result
    assert trickler.connections == 1  # no hidden re-send
