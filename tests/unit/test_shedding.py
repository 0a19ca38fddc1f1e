"""Admission control as pure ASGI middleware, on a tiny Starlette app held open with events."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import httpx2
import pytest
from prometheus_client import CollectorRegistry
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route
from starlette.types import Message, Receive, Scope, Send

from demo_service.metrics import ServiceMetrics
from demo_service.resilience.shedding import Admission, AdmissionMiddleware, StaticLimiter


class Held:
    """Requests to ``/work`` wait on ``gate``; ``arrived(n)`` waits until n of them are inside."""

    def __init__(self) -> None:
        self.gate = asyncio.Event()
        self.inside = 0
        self._changed = asyncio.Condition()

    async def enter(self) -> None:
        async with self._changed:
            self.inside += 1
            self._changed.notify_all()
        await self.gate.wait()

    async def arrived(self, count: int) -> None:
        async with self._changed:
            await asyncio.wait_for(self._changed.wait_for(lambda: self.inside >= count), 5)


class Recorder:
    """A limiter that records the samples it is fed."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.samples: list[tuple[float, bool, int]] = []

    def on_sample(self, latency_s: float, ok: bool, in_flight: int) -> int:
        self.samples.append((latency_s, ok, in_flight))
        return self.limit


def tiny_app(held: Held) -> Starlette:
    async def work(_: Request) -> Response:
        await held.enter()
        return PlainTextResponse("done")

    async def fast(_: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def boom(_: Request) -> Response:
        raise RuntimeError("handler failed")

    async def bad_gateway(_: Request) -> Response:
        return PlainTextResponse("upstream failed", status_code=502)

    routes = [Route("/work", work), Route("/fast", fast), Route("/boom", boom)]
    routes += [Route("/bad-gateway", bad_gateway), Route("/admin/reset", fast)]
    routes += [Route(path, work) for path in ("/healthz", "/metrics")]
    return Starlette(routes=routes)


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


@pytest.fixture
def admission(registry: CollectorRegistry) -> Admission:
    return Admission(ServiceMetrics(registry).resilience, StaticLimiter(3))


@pytest.fixture
def held() -> Held:
    return Held()


@pytest.fixture
async def client(admission: Admission, held: Held) -> AsyncIterator[httpx2.AsyncClient]:
    app = AdmissionMiddleware(tiny_app(held), admission)
    transport = httpx2.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx2.AsyncClient(transport=transport, base_url="http://test") as client:
        yield client


async def yields_until(condition: Callable[[], bool]) -> None:
    """Let other tasks run until ``condition`` holds: bounded in loop turns, never a sleep."""
    for _ in range(1_000):
        if condition():
            return
        await asyncio.sleep(0)
    raise AssertionError("condition not reached")


def value(registry: CollectorRegistry, name: str, **labels: str) -> float:
    return registry.get_sample_value(name, labels) or 0.0


async def test_the_request_past_the_limit_is_shed_at_once(
    client: httpx2.AsyncClient, admission: Admission, held: Held, registry: CollectorRegistry
) -> None:
    holders = [asyncio.create_task(client.get("/work")) for _ in range(3)]
    await held.arrived(3)
    assert value(registry, "brink_admission_in_flight") == 3
    assert value(registry, "brink_admission_limit") == 3

    shed = await client.get("/work")  # answered while the three are still held
    assert shed.status_code == 503
    assert shed.headers["retry-after"] == "1"
    assert shed.json() == {"detail": "in_flight_limit"}
    assert held.inside == 3
    assert value(registry, "brink_shed_total", reason="in_flight_limit") == 1

    held.gate.set()
    assert [response.status_code for response in await asyncio.gather(*holders)] == [200] * 3
    assert admission.in_flight == 0
    assert value(registry, "brink_admission_in_flight") == 0


async def test_exempt_paths_pass_while_full(
    client: httpx2.AsyncClient, admission: Admission, held: Held
) -> None:
    admission.limiter = StaticLimiter(1)
    holder = asyncio.create_task(client.get("/work"))
    await held.arrived(1)
    assert (await client.get("/admin/reset")).status_code == 200
    assert (await client.get("/fast")).status_code == 503
    exempt = [asyncio.create_task(client.get(path)) for path in ("/healthz", "/metrics")]
    await held.arrived(3)  # held too, yet not counted against the limit
    assert admission.in_flight == 1
    held.gate.set()
    for response in await asyncio.gather(holder, *exempt):
        assert response.status_code == 200


def test_exempt_matching_is_by_path_segment(admission: Admission) -> None:
    middleware = AdmissionMiddleware(tiny_app(Held()), admission, exempt=["/admin/", "/healthz"])
    assert middleware.is_exempt("/admin")
    assert middleware.is_exempt("/admin/presets/resilient")
    assert middleware.is_exempt("/healthz")
    assert not middleware.is_exempt("/administrator")
    assert not middleware.is_exempt("/healthzz")
    assert not middleware.is_exempt("/items/1")


async def test_a_failing_handler_still_frees_its_slot(
    client: httpx2.AsyncClient, admission: Admission
) -> None:
    recorder = Recorder(1)
    admission.limiter = recorder
    assert (await client.get("/boom")).status_code == 500
    assert admission.in_flight == 0
    assert (await client.get("/bad-gateway")).status_code == 502
    assert (await client.get("/fast")).status_code == 200
    assert [(ok, in_flight) for _, ok, in_flight in recorder.samples] == [
        (False, 1),
        (False, 1),
        (True, 1),
    ]


async def test_samples_carry_the_latency_on_the_injected_clock(registry: CollectorRegistry) -> None:
    ticks = iter([10.0, 10.25])
    recorder = Recorder(5)
    admission = Admission(ServiceMetrics(registry).resilience, recorder, clock=lambda: next(ticks))
    app = AdmissionMiddleware(tiny_app(Held()), admission)
    async with httpx2.AsyncClient(transport=httpx2.ASGITransport(app=app)) as client:
        assert (await client.get("http://test/fast")).status_code == 200
    assert recorder.samples == [(0.25, True, 1)]


async def direct_call(app: AdmissionMiddleware, receive: Receive, sent: list[Message]) -> None:
    scope: Scope = {"type": "http", "method": "GET", "path": "/raw", "headers": []}

    async def send(message: Message) -> None:
        sent.append(message)

    await app(scope, receive, send)


async def test_client_disconnect_frees_the_slot(admission: Admission) -> None:
    inside, gone = asyncio.Event(), asyncio.Event()
    messages: list[Message] = [{"type": "http.request", "body": b"", "more_body": False}]

    async def receive() -> Message:
        if messages:
            return messages.pop()
        await gone.wait()
        return {"type": "http.disconnect"}

    async def raw(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        inside.set()
        while (await receive())["type"] != "http.disconnect":
            pass  # the client left: give up without answering

    sent: list[Message] = []
    task = asyncio.create_task(direct_call(AdmissionMiddleware(raw, admission), receive, sent))
    await inside.wait()
    assert admission.in_flight == 1
    gone.set()
    await task
    assert admission.in_flight == 0
    assert sent == []


async def test_cancellation_frees_the_slot(admission: Admission) -> None:
    inside = asyncio.Event()

    async def raw(scope: Scope, receive: Receive, send: Send) -> None:
        inside.set()
        await asyncio.Event().wait()

    async def never() -> Message:
        raise AssertionError("not read")

    task = asyncio.create_task(direct_call(AdmissionMiddleware(raw, admission), never, []))
    await inside.wait()
    assert admission.in_flight == 1
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert admission.in_flight == 0


async def test_off_admits_everything_but_still_counts(
    client: httpx2.AsyncClient, admission: Admission, held: Held, registry: CollectorRegistry
) -> None:
    admission.limiter = None
    holders = [asyncio.create_task(client.get("/work")) for _ in range(10)]
    await held.arrived(10)
    assert admission.in_flight == 10
    assert value(registry, "brink_admission_limit") == 0
    held.gate.set()
    assert {response.status_code for response in await asyncio.gather(*holders)} == {200}
    assert value(registry, "brink_shed_total", reason="in_flight_limit") == 0


async def test_the_limit_changes_live(
    client: httpx2.AsyncClient, admission: Admission, held: Held
) -> None:
    limiter = StaticLimiter(1)
    admission.limiter = limiter
    first = asyncio.create_task(client.get("/work"))
    await held.arrived(1)
    assert (await client.get("/fast")).status_code == 503
    limiter.limit = 2
    assert (await client.get("/fast")).status_code == 200
    held.gate.set()
    assert (await first).status_code == 200
    with pytest.raises(ValueError, match="at least 1"):
        limiter.limit = 0


async def test_a_queued_request_gets_the_next_free_slot(
    client: httpx2.AsyncClient, admission: Admission, held: Held, registry: CollectorRegistry
) -> None:
    admission.limiter, admission.max_queue_s = StaticLimiter(1), 30.0
    first = asyncio.create_task(client.get("/work"))
    await held.arrived(1)
    second = asyncio.create_task(client.get("/work"))
    await yields_until(lambda: admission.waiting == 1)
    assert held.inside == 1
    held.gate.set()
    assert [(await task).status_code for task in (first, second)] == [200, 200]
    assert held.inside == 2
    assert admission.in_flight == 0
    assert admission.waiting == 0
    assert value(registry, "brink_shed_total", reason="queue_time_limit") == 0


async def test_a_request_queued_too_long_is_shed(
    client: httpx2.AsyncClient, admission: Admission, held: Held, registry: CollectorRegistry
) -> None:
    admission.limiter, admission.max_queue_s = StaticLimiter(1), 0.01  # a shrunk timeout
    first = asyncio.create_task(client.get("/work"))
    await held.arrived(1)
    shed = await client.get("/work")
    assert shed.status_code == 503
    assert shed.json() == {"detail": "queue_time_limit"}
    assert value(registry, "brink_shed_total", reason="queue_time_limit") == 1
    assert admission.waiting == 0
    held.gate.set()
    assert (await first).status_code == 200
    assert admission.in_flight == 0


async def queue_behind_one(admission: Admission) -> asyncio.Task[str | None]:
    """Admit one request directly, then queue a second one; return the queued one."""
    admission.limiter, admission.max_queue_s = StaticLimiter(1), 30.0
    assert await admission.admit() is None
    queued = asyncio.create_task(admission.admit())
    await yields_until(lambda: admission.waiting == 1)
    return queued


async def test_a_slot_granted_to_a_request_cancelled_in_the_same_instant_is_freed(
    admission: Admission,
) -> None:
    queued = await queue_behind_one(admission)
    admission.finish(0.01, ok=True)  # hands the slot to the queued request...
    queued.cancel()  # ...which is cancelled before it could run
    with pytest.raises(asyncio.CancelledError):
        await queued
    assert admission.in_flight == 0


async def test_a_cancelled_waiter_is_skipped(admission: Admission) -> None:
    queued = await queue_behind_one(admission)
    queued.cancel()  # gone, though still in the queue until it runs again...
    admission.finish(0.01, ok=True)  # ...so the free slot must not go to it
    with pytest.raises(asyncio.CancelledError):
        await queued
    assert (admission.in_flight, admission.waiting) == (0, 0)


async def test_lifespan_and_other_scopes_pass_through(admission: Admission) -> None:
    seen: list[str] = []

    async def raw(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append(scope["type"])

    async def nothing() -> Message:
        return {}

    async def drop(_: Message) -> None:
        pass

    await AdmissionMiddleware(raw, admission)({"type": "lifespan"}, nothing, drop)
    assert seen == ["lifespan"]
    assert admission.in_flight == 0
