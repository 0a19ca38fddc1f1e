"""The fake external API: quotes that take as long as :class:`LatencyModel` says.

Run it with ``python -m demo_service.slow_api`` (settings from ``BRINK_*``). Its knobs can be
read and changed at run time through ``/control`` when ``BRINK_ADMIN_TOKEN`` is set; without a
token those routes do not exist.
"""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Query, Request, Response, status
from fastapi.responses import PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from pydantic import BaseModel, ConfigDict, Field

from demo_service.auth import UNAUTHORIZED_RESPONSES, require_bearer
from demo_service.body_limit import BodyLimit
from demo_service.latency import OUTAGES, LatencyModel, Outage
from demo_service.metrics import SlowApiMetrics
from demo_service.problems import BODY_ERRORS, Problem, declared
from demo_service.serve import serve
from demo_service.settings import Settings, SlowApiSettings, load_settings
from demo_service.validation import NumbersAreNotBooleans

_CARRIERS = ("parcelpost", "swiftship", "cargoline", "bluefreight")


class Quote(BaseModel):
    """A shipping quote; the same inputs always give the same quote."""

    item_id: int
    quantity: int
    carrier: str
    price_cents: int


class Health(BaseModel):
    """The liveness answer."""

    status: Literal["ok"] = "ok"


class Knobs(BaseModel):
    """The latency model's knobs, named as in ``BRINK_SLOW_API__*``."""

    base_latency_s: float
    jitter_sigma: float
    capacity: int
    error_rate: float
    extra_latency_s: float
    outage: Outage

    @classmethod
    def of(cls, model: LatencyModel) -> Knobs:
        return cls(
            base_latency_s=model.base_s,
            jitter_sigma=model.jitter_sigma,
            capacity=model.capacity,
            error_rate=model.error_rate,
            extra_latency_s=model.extra_s,
            outage=model.outage,
        )

    def to_model(self) -> LatencyModel:
        return LatencyModel(
            self.base_latency_s,
            self.jitter_sigma,
            self.capacity,
            self.error_rate,
            self.extra_latency_s,
            self.outage,
        )


def _bounds(knob: str) -> Any:
    """The numeric bounds :class:`SlowApiSettings` declares for ``knob``, as a ``Field``."""
    limits = {
        name: getattr(item, name)
        for item in SlowApiSettings.model_fields[knob].metadata
        for name in ("gt", "ge", "lt", "le")
        if hasattr(item, name)
    }
    return Field(**limits)


def _no_default(schema: dict[str, Any]) -> None:
    schema.pop("default", None)


def _optional() -> Any:
    """Default for a knob left out of an update: absent means unchanged; null is refused."""
    return Field(default=None, json_schema_extra=_no_default)


class KnobsUpdate(NumbersAreNotBooleans):
    """Any subset of the knobs, within the same bounds as the settings; others stay as they are."""

    model_config = ConfigDict(extra="forbid")

    base_latency_s: Annotated[float, _bounds("base_latency_s")] = _optional()
    jitter_sigma: Annotated[float, _bounds("jitter_sigma")] = _optional()
    capacity: Annotated[int, _bounds("capacity")] = _optional()
    error_rate: Annotated[float, _bounds("error_rate")] = _optional()
    extra_latency_s: Annotated[float, _bounds("extra_latency_s")] = _optional()
    outage: Outage = _optional()


@dataclass
class SlowApiState:
    """What one slow-API app changes while it runs: the model, its random source, the load."""

    initial: LatencyModel
    model: LatencyModel
    rng: random.Random
    metrics: SlowApiMetrics
    in_flight: int = 0
    no_hang: asyncio.Event = field(default_factory=asyncio.Event)
    """Set unless the outage knob is ``hang``: hanging calls wait on it."""

    def use(self, model: LatencyModel) -> Knobs:
        """Switch to ``model``, export its knobs and return them (outage as its index)."""
        self.model = model
        knobs = Knobs.of(model)
        for name, value in knobs.model_dump().items():
            number = OUTAGES.index(value) if name == "outage" else value
            self.metrics.knob.labels(knob=name).set(number)
        if model.outage == "hang":
            self.no_hang.clear()
        else:
            self.no_hang.set()
        return knobs


def _state(request: Request) -> SlowApiState:
    state: SlowApiState = request.app.state.slow_api
    return state


State = Annotated[SlowApiState, Depends(_state)]


def price_quote(item_id: int, quantity: int) -> Quote:
    """The deterministic quote for ``quantity`` of ``item_id``."""
    unit_cents = 100 + (item_id * 2_654_435_761) % 99_900  # Knuth's multiplicative hash
    return Quote(
        item_id=item_id,
        quantity=quantity,
        carrier=_CARRIERS[item_id % len(_CARRIERS)],
        price_cents=unit_cents * quantity,
    )


_public = APIRouter()


@_public.get(
    "/quote",
    responses={
        status.HTTP_503_SERVICE_UNAVAILABLE: {
            "model": Problem,
            "description": "An injected error (the error_rate knob) or an outage (outage=error).",
        },
    },
)
async def quote(
    state: State,
    item_id: Annotated[int, Query(ge=1, le=2**31 - 1)],
    quantity: Annotated[int, Query(ge=1, le=100)] = 1,
) -> Quote:
    """A quote, after the latency model's delay; the delay grows past capacity."""
    started = time.perf_counter()
    state.in_flight += 1
    state.metrics.in_flight.inc()
    try:
        await state.no_hang.wait()  # outage=hang: held until the outage ends
        delay = state.model.delay(state.rng, state.in_flight)
        failed = state.model.outage == "error" or state.model.fails(state.rng)
        if state.model.outage != "error":
            await asyncio.sleep(delay)
    finally:
        state.in_flight -= 1
        state.metrics.in_flight.dec()
    code = status.HTTP_503_SERVICE_UNAVAILABLE if failed else status.HTTP_200_OK
    state.metrics.requests.labels(status=str(code)).inc()
    state.metrics.duration.observe(time.perf_counter() - started)
    if failed:
        raise HTTPException(code, detail="injected error")
    return price_quote(item_id, quantity)


@_public.get("/healthz")
async def healthz() -> Health:
    """Liveness: the process answers."""
    return Health()


@_public.get(
    "/metrics",
    response_class=PlainTextResponse,
    responses={status.HTTP_200_OK: {"description": "Prometheus text exposition format."}},
)
async def metrics(state: State) -> Response:
    """This app's Prometheus metrics."""
    return Response(generate_latest(state.metrics.registry), media_type=CONTENT_TYPE_LATEST)


_control = APIRouter(prefix="/control", tags=["control"])


@_control.get("")
async def get_control(state: State) -> Knobs:
    """The knobs in use now."""
    return Knobs.of(state.model)


@_control.put("", responses=declared(*BODY_ERRORS))
async def put_control(state: State, update: KnobsUpdate) -> Knobs:
    """Change any subset of the knobs; returns all of them."""
    changed = Knobs.of(state.model).model_copy(update=update.model_dump(exclude_unset=True))
    return state.use(changed.to_model())


@_control.post("/reset")
async def reset_control(state: State) -> Knobs:
    """Back to the knobs the process started with."""
    return state.use(state.initial)


def create_slow_api(settings: Settings | None = None) -> FastAPI:
    """A new slow-API app with its own metrics registry; loads the settings when none given."""
    settings = settings if settings is not None else load_settings()
    initial = LatencyModel.from_settings(settings.slow_api)
    state = SlowApiState(
        initial=initial,
        model=initial,
        rng=random.Random(settings.slow_api.seed),
        metrics=SlowApiMetrics(CollectorRegistry()),
    )
    state.use(initial)
    app = FastAPI(
        title="brink slow API",
        summary="A fake external API whose latency, capacity and errors are knobs.",
    )
    app.state.slow_api = state
    app.add_middleware(BodyLimit, max_bytes=settings.slow_api.max_body_bytes)
    app.include_router(_public)
    if settings.admin_token is not None:
        app.include_router(
            _control,
            dependencies=[Depends(require_bearer(settings.admin_token))],
            responses=UNAUTHORIZED_RESPONSES,
        )
    return app


def main() -> None:
    """``python -m demo_service.slow_api``: exit 2 with one line on a bad setting."""
    serve(
        "brink slow API",
        create_slow_api,
        lambda settings: (settings.slow_api.host, settings.slow_api.port),
    )


if __name__ == "__main__":
    main()
