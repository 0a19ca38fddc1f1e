"""Service-side faults: declarative knobs, changed live through the admin API, with one reset.

:class:`FaultValues` is the table: each field is one knob with its target, unit, bounds and
meaning (:func:`fault_table` lists them for the docs). A knob that changes live what a
start-up setting sets (``BRINK_DB__EXTRA_LATENCY_S``, ``BRINK_DB__POOL_MAX``,
``BRINK_DB__POOL_MIN``, ``BRINK_EXTERNAL__MAX_CONNECTIONS``, ``BRINK_EXTERNAL__MAX_KEEPALIVE``)
takes that setting's default and bounds, and the process starts with the setting's value; the
others start off. ``reset`` goes back to the start. ``brink_fault_active{fault}`` is 1 while a
knob differs from it. The pool and client knobs rebuild the asyncpg pool or the external API's
client and swap it in live (``db.py``, ``external.py``).

The slow API's own faults (latency, errors, outage) are knobs of that process: ``/control``.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from pydantic.fields import FieldInfo
from starlette.types import ASGIApp, Receive, Scope, Send

from demo_service.db import Database
from demo_service.external import ExternalApi
from demo_service.http_metrics import current_route
from demo_service.metrics import ServiceMetrics
from demo_service.orders import Holds
from demo_service.resilience.shedding import DEFAULT_EXEMPT
from demo_service.settings import DatabaseSettings, ExternalSettings, Settings
from demo_service.validation import NumbersAreNotBooleans


def _knob(default: float, target: str, unit: str, meaning: str, *, ge: float, le: float) -> Any:
    extra: dict[str, Any] = {"target": target, "unit": unit}
    return Field(default, description=meaning, json_schema_extra=extra, ge=ge, le=le)


def _setting_knob(
    group: type[BaseModel], setting: str, target: str, unit: str, meaning: str
) -> Any:
    """A knob for a start-up setting: the setting's default and bounds, declared once there."""
    info = group.model_fields[setting]
    return _knob(info.default, target, unit, meaning, **_field_bounds(info))


def _field_bounds(info: FieldInfo) -> dict[str, Any]:
    return {
        name: getattr(item, name)
        for item in info.metadata
        for name in ("ge", "le")
        if hasattr(item, name)
    }


class FaultValues(BaseModel):
    """Every service-side fault knob and its value now."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    db_latency_s: float = _setting_knob(
        DatabaseSettings, "extra_latency_s", "db", "seconds",
        "`pg_sleep` at the start of each order transaction: holds a pool connection, no lock",
    )  # fmt: skip
    hot_row_lock_s: float = _knob(
        0.0, "db", "seconds",
        "`pg_sleep` right after the item's `SELECT … FOR UPDATE`, for items ≤ `hot_items`:"
        " holds the row lock (orders of the same item queue behind it)",
        ge=0, le=10,
    )  # fmt: skip
    hot_items: int = _knob(
        10, "db", "items", "which items `hot_row_lock_s` applies to: ids 1..N", ge=1, le=1_000_000
    )
    cpu_burn_iterations: int = _knob(
        0, "service", "PBKDF2 iterations",
        "extra CPU on the event loop for every request but health, metrics and admin"
        " (~1 ms per 1,000)",
        ge=0, le=10_000_000,
    )  # fmt: skip
    pool_size: int = _setting_knob(
        DatabaseSettings, "pool_max", "db pool", "connections",
        "maximum size of the asyncpg pool: a new pool is built and swapped in live",
    )  # fmt: skip
    pool_min: int = _setting_knob(
        DatabaseSettings, "pool_min", "db pool", "connections",
        "floor of the asyncpg pool, at most `pool_size`: connections opened when the pool is"
        " built and kept open while idle; a new pool is built and swapped in live",
    )  # fmt: skip
    external_pool_size: int = _setting_knob(
        ExternalSettings, "max_connections", "external client", "connections",
        "connections the slow API's client may hold at once: a new client is built and swapped"
        " in live; calls under way (queued for a connection too) finish on the old one, which"
        " then closes",
    )  # fmt: skip
    external_keepalive: int = _setting_knob(
        ExternalSettings, "max_keepalive", "external client", "connections",
        "of those, how many the client keeps open while idle (at most `external_pool_size`);"
        " a new client is built and swapped in live",
    )  # fmt: skip

    @classmethod
    def at_start(cls, settings: Settings) -> FaultValues:
        db, external = settings.db, settings.external
        return cls(
            db_latency_s=db.extra_latency_s,
            pool_size=db.pool_max,
            pool_min=db.pool_min,
            external_pool_size=external.max_connections,
            external_keepalive=external.max_keepalive,
        )

    def holds(self) -> Holds:
        return Holds(self.db_latency_s, self.hot_row_lock_s, self.hot_items)


def _bounds(knob: str) -> dict[str, Any]:
    return _field_bounds(FaultValues.model_fields[knob])


def _optional(knob: str) -> Any:
    """The knob's bounds; absent means unchanged, null is refused (as in the slow API)."""
    info = FaultValues.model_fields[knob]
    return Field(None, description=info.description, json_schema_extra=_no_default, **_bounds(knob))


def _no_default(schema: dict[str, Any]) -> None:
    schema.pop("default", None)


class FaultsUpdate(NumbersAreNotBooleans):
    """Any subset of the knobs; the others stay as they are."""

    model_config = ConfigDict(extra="forbid")

    db_latency_s: float = _optional("db_latency_s")
    hot_row_lock_s: float = _optional("hot_row_lock_s")
    hot_items: int = _optional("hot_items")
    cpu_burn_iterations: int = _optional("cpu_burn_iterations")
    pool_size: int = _optional("pool_size")
    pool_min: int = _optional("pool_min")
    external_pool_size: int = _optional("external_pool_size")
    external_keepalive: int = _optional("external_keepalive")

    def changes(self) -> dict[str, Any]:
        return self.model_dump(exclude_unset=True)


@dataclass(frozen=True)
class FaultRow:
    name: str
    target: str
    unit: str
    default: object
    bounds: str
    meaning: str


def fault_table() -> Iterator[FaultRow]:
    """The knobs as rows (name, target, unit, default, bounds, meaning), for the docs."""
    for name, info in FaultValues.model_fields.items():
        extra = info.json_schema_extra
        assert isinstance(extra, dict)
        bounds = _bounds(name)
        yield FaultRow(
            name, str(extra["target"]), str(extra["unit"]), info.default,
            f"{bounds['ge']:,} to {bounds['le']:,}", info.description or "",
        )  # fmt: skip


class Faults:
    """The fault knobs in force; ``apply`` and ``reset`` change them live."""

    def __init__(self, start: FaultValues, metrics: ServiceMetrics) -> None:
        self.start = start
        self.values = start
        self._active = metrics.resilience.fault_active
        self._applying = asyncio.Lock()
        self._publish()

    async def apply(
        self, changes: Mapping[str, Any], db: Database, external: ExternalApi
    ) -> FaultValues:
        """Set the knobs in ``changes`` (validated already), one change at a time. The pool or
        the client is rebuilt when its sizes change; if that fails, no knob changes."""
        async with self._applying:
            now = self.values
            values = now.model_copy(update=dict(changes))
            if (values.pool_size, values.pool_min) != (now.pool_size, now.pool_min):
                await db.resize(values.pool_size, values.pool_min)
            external_pool = (values.external_pool_size, values.external_keepalive)
            if external_pool != (now.external_pool_size, now.external_keepalive):
                external.resize(*external_pool)
            self.values = values
            self._publish()
            return values

    async def reset(self, db: Database, external: ExternalApi) -> FaultValues:
        return await self.apply(self.start.model_dump(), db, external)

    def _publish(self) -> None:
        for name in FaultValues.model_fields:
            changed = getattr(self.values, name) != getattr(self.start, name)
            self._active.labels(name).set(int(changed))


class CpuBurnMiddleware:
    """Pure ASGI: burns ``cpu_burn_iterations`` of PBKDF2 on the event loop before each request."""

    def __init__(
        self,
        app: ASGIApp,
        faults: Faults,
        metrics: ServiceMetrics,
        exempt: Iterable[str] = DEFAULT_EXEMPT,
    ) -> None:
        self.app = app
        self.faults = faults
        self.metrics = metrics
        self.exempt = tuple(path.rstrip("/") for path in exempt)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        iterations = self.faults.values.cpu_burn_iterations
        if iterations and scope["type"] == "http" and not self._exempt(scope["path"]):
            started = time.thread_time()
            hashlib.pbkdf2_hmac("sha256", b"brink", b"cpu-burn-fault", iterations)
            self.metrics.cpu_work.labels(current_route.get()).inc(time.thread_time() - started)
        await self.app(scope, receive, send)

    def _exempt(self, path: str) -> bool:
        return any(path == prefix or path.startswith(prefix + "/") for prefix in self.exempt)
