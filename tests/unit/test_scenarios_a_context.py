"""ScenarioContext's knob calls and drain, against httpx2.MockTransport and a fake clock."""

from __future__ import annotations

import json
from pathlib import Path

import httpx2
import pytest

from loadtests.scenarios.base import ScenarioError, ScenarioOptions
from loadtests.scenarios.context import ScenarioContext

SERVICE, SLOW_API = "http://127.0.0.1:8000", "http://127.0.0.1:8001"
BUSY = "brink_http_requests_in_flight 7\nbrink_db_pool_waiters 3\n"
IDLE = "brink_http_requests_in_flight 0\nbrink_db_pool_waiters 0\n"


class FakeTime:
    def __init__(self) -> None:
        self.now = 1000.0

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def _context(
    handler: httpx2.MockTransport,
    tmp_path: Path,
    token: str | None = "t0ken",
    time_: FakeTime | None = None,
) -> ScenarioContext:
    fake = time_ or FakeTime()
    return ScenarioContext(
        tmp_path,
        ScenarioOptions(),
        service_url=SERVICE,
        slow_api_url=SLOW_API,
        token=token,
        clock=fake.clock,
        sleep=fake.sleep,
        transport=handler,
    )


def test_knob_calls_carry_the_token_and_hit_each_api(tmp_path: Path) -> None:
    seen: list[tuple[str, str, str | None, object]] = []

    def handle(request: httpx2.Request) -> httpx2.Response:
        body = json.loads(request.content) if request.content else None
        seen.append((request.method, str(request.url), request.headers.get("authorization"), body))
        return httpx2.Response(200, json={})

    ctx = _context(httpx2.MockTransport(handle), tmp_path)
    ctx.set_preset("resilient")
    ctx.set_faults(db_latency_s=0.05)
    ctx.set_slow_api(extra_latency_s=0.2)
    ctx.reset()

    assert [(m, u, b) for m, u, _, b in seen] == [
        ("PUT", f"{SERVICE}/admin/resilience", {"preset": "resilient"}),
        ("PUT", f"{SERVICE}/admin/faults", {"db_latency_s": 0.05}),
        ("PUT", f"{SLOW_API}/control", {"extra_latency_s": 0.2}),
        ("POST", f"{SERVICE}/admin/faults/reset", None),
        ("POST", f"{SERVICE}/admin/resilience/reset", None),
        ("POST", f"{SLOW_API}/control/reset", None),
    ]
    assert {auth for _, _, auth, _ in seen} == {"Bearer t0ken"}


def test_a_refused_knob_raises_with_the_reason(tmp_path: Path) -> None:
    def refuse(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(422, json={"detail": "preset: 'brittle' is not a preset"})

    ctx = _context(httpx2.MockTransport(refuse), tmp_path)
    with pytest.raises(ScenarioError, match=r"422.*brittle"):
        ctx.set_preset("brittle")


def test_knobs_need_a_token(tmp_path: Path) -> None:
    ctx = _context(httpx2.MockTransport(lambda r: httpx2.Response(200)), tmp_path, token=None)
    with pytest.raises(ScenarioError, match="admin token"):
        ctx.reset()


def test_drain_waits_until_nothing_is_in_flight(tmp_path: Path) -> None:
    answers = iter([BUSY, BUSY, "", IDLE])

    def metrics(request: httpx2.Request) -> httpx2.Response:
        text = next(answers)
        return httpx2.Response(200 if text else 503, text=text)

    fake = FakeTime()
    ctx = _context(httpx2.MockTransport(metrics), tmp_path, time_=fake)
    assert ctx.drain(timeout_s=10.0, poll_s=0.5) is True
    assert fake.now == pytest.approx(1001.5)  # three polls waited, the fourth was idle


def test_drain_gives_up_at_the_deadline(tmp_path: Path) -> None:
    fake = FakeTime()
    busy = httpx2.MockTransport(lambda r: httpx2.Response(200, text=BUSY))
    ctx = _context(busy, tmp_path, time_=fake)
    assert ctx.drain(timeout_s=3.0, poll_s=0.5) is False
    assert 1003.0 <= fake.now <= 1003.5
