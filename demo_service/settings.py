"""One validated settings object for both brink processes (demo service and slow API).

Every value comes from the environment with the prefix ``BRINK_``; nested groups use ``__``:
``BRINK_DB__POOL_MAX=10``, ``BRINK_SLOW_API__CAPACITY=20``. Compose and native mode use the same
names. A bad value stops start-up with one line that names the setting (:func:`load_settings`).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Mapping
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import (
    AnyHttpUrl,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import ErrorDetails
from pydantic_settings import BaseSettings, SettingsConfigDict
from pydantic_settings import SettingsError as SourceError

from demo_service.resilience.presets import PresetName, ResilienceOverrides, merge

ENV_PREFIX = "BRINK_"
ENV_NESTED_DELIMITER = "__"

Seconds = Annotated[float, Field(gt=0, le=3600)]
Port = Annotated[int, Field(ge=1, le=65535)]
Host = Annotated[str, Field(min_length=1, max_length=253, pattern=r"^[A-Za-z0-9.:_\-\[\]]+$")]
"""An IP address or a host name to bind: never empty (that would mean every interface)."""


class _Group(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class ServerSettings(_Group):
    """The demo service's HTTP listener and request limits."""

    host: Host = "127.0.0.1"
    port: Port = 8000
    max_body_bytes: int = Field(65_536, ge=1_024, le=16 * 1024 * 1024)
    metrics_enabled: bool = True
    loop_lag_interval_s: Seconds = 0.1
    drain_timeout_s: Seconds = 10.0
    """On SIGTERM: the longest a brink app waits for requests in flight to finish (new ones are
    refused at once); past it what is left gets 503 and the process exits (``serve.py``)."""


class DatabaseSettings(_Group):
    """Postgres connection, the asyncpg pool under test and the seeded catalogue."""

    dsn: str = "postgresql://brink@127.0.0.1:54329/brink"
    pool_min: int = Field(1, ge=0, le=500)
    pool_max: int = Field(5, ge=1, le=500)
    acquire_timeout_s: Seconds | None = None
    """Shorthand for ``BRINK_RESILIENCE__DEADLINES__DB_ACQUIRE_S`` (which wins when both are set):
    a start-up override of the preset's pool-checkout deadline. Unset: the preset decides."""
    connect_timeout_s: Seconds = 5.0
    extra_latency_s: float = Field(0.0, ge=0, le=10)
    """Extra time each order transaction holds its connection (``pg_sleep``): a known DB hold."""
    seed_items: int = Field(1_000, ge=1, le=1_000_000)
    initial_stock: int = Field(1_000_000, ge=0, le=2_000_000_000)

    @field_validator("dsn")
    @classmethod
    def _postgres_dsn(cls, value: str) -> str:
        if not value.startswith(("postgresql://", "postgres://")):
            raise ValueError("must be a postgresql:// URL")
        try:
            urlsplit(value).port  # noqa: B018 - parsing the port checks it is a port number
        except ValueError as exc:
            raise ValueError(f"must be a postgresql:// URL ({exc})") from None
        return value

    @model_validator(mode="after")
    def _min_not_above_max(self) -> DatabaseSettings:
        if self.pool_min > self.pool_max:
            raise ValueError(
                f"{env_name(('db', 'pool_min'))} ({self.pool_min}) exceeds"
                f" {env_name(('db', 'pool_max'))} ({self.pool_max})"
            )
        return self


class ExternalSettings(_Group):
    """The shared HTTP client that calls the slow external API."""

    url: AnyHttpUrl = AnyHttpUrl("http://127.0.0.1:8001")
    max_connections: int = Field(10, ge=1, le=1_000)
    max_keepalive: int = Field(10, ge=0, le=1_000)
    connect_timeout_s: Seconds = 2.0
    read_timeout_s: Seconds = 10.0
    pool_timeout_s: Seconds = 10.0


class CpuSettings(_Group):
    """Cost of one request to the CPU-bound route: PBKDF2-SHA256 iterations (~1 ms per 1,000)."""

    iterations: int = Field(5_000, ge=1, le=10_000_000)


class SlowApiSettings(_Group):
    """The fake external API: its listener and latency model."""

    host: Host = "127.0.0.1"
    port: Port = 8001
    base_latency_s: float = Field(0.02, ge=0, le=60)
    jitter_sigma: float = Field(0.5, ge=0, le=3)
    """Sigma of the lognormal factor on the base latency: 0 is constant, 1 is a long tail."""
    capacity: int = Field(20, ge=1, le=100_000)
    """In-flight requests served at full speed; past it each slows by in_flight / capacity."""
    error_rate: float = Field(0.0, ge=0, le=1)
    extra_latency_s: float = Field(0.0, ge=0, le=60)
    """Added to every call's time (a fault: "the dependency got 200 ms slower")."""
    outage: Literal["none", "hang", "error"] = "none"
    """A fault: ``hang`` holds every call until the outage ends, ``error`` answers 503 at once."""
    seed: int | None = None
    max_body_bytes: int = Field(16_384, ge=1_024, le=16 * 1024 * 1024)
    """Largest request body accepted (the ``/control`` knobs); past it 413."""


class PgExporterSettings(_Group):
    """brink's own Postgres exporter (native mode): its listener and its budget per scrape.

    It reads the database from ``BRINK_DB__DSN`` on a connection of its own, never the pool.
    """

    host: Host = "127.0.0.1"
    port: Port = 9187
    scrape_timeout_s: Seconds = 1.5
    """Connecting (when needed) plus every query of one scrape; past it the scrape says pg_up 0.
    Below Prometheus' 2 s scrape timeout, so a slow database shows as pg_up 0, not a lost scrape."""


class ResilienceSettings(ResilienceOverrides):
    """The resilience preset chosen at start-up, and any knob of it overridden.

    ``BRINK_RESILIENCE__PRESET=fragile|resilient|adaptive``; every knob of
    :class:`~demo_service.resilience.presets.ResilienceConfig` can be overridden on its own,
    e.g. ``BRINK_RESILIENCE__SHEDDING__LIMIT=40`` or ``BRINK_RESILIENCE__DEADLINES__EXTERNAL_S=0``.
    Only the knobs given override the preset; the result is validated as a whole.
    """

    preset: PresetName = "fragile"

    @model_validator(mode="after")
    def _valid_over_the_preset(self) -> ResilienceSettings:
        try:
            merge(self.preset, self.overrides())
        except ValidationError as exc:
            errors = exc.errors()
            reasons = (str(error.get("ctx", {}).get("error", error["msg"])) for error in errors)
            raise ValueError(_knob_env_names("; ".join(reasons))) from None
        return self

    def __repr_args__(self) -> Iterator[tuple[str, object]]:
        yield "preset", self.preset  # the groups' own defaults are not in effect: hide them
        yield "overrides", self.overrides()


class Settings(BaseSettings):
    """Everything brink's processes can be told, read once at start-up."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter=ENV_NESTED_DELIMITER,
        extra="forbid",
        frozen=True,
    )

    server: ServerSettings = ServerSettings()
    db: DatabaseSettings = DatabaseSettings()
    external: ExternalSettings = ExternalSettings()
    cpu: CpuSettings = CpuSettings()
    slow_api: SlowApiSettings = SlowApiSettings()
    pg_exporter: PgExporterSettings = PgExporterSettings()
    resilience: ResilienceSettings = ResilienceSettings()
    admin_token: SecretStr | None = None
    """Token for the control and admin endpoints; without it those endpoints do not exist."""

    @field_validator("admin_token")
    @classmethod
    def _long_enough(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < 16:
            raise ValueError("must be at least 16 characters")
        return value


class SettingsError(Exception):
    """A setting is invalid; the message names it the way the user spelled it."""


def env_name(location: tuple[int | str, ...]) -> str:
    """``("db", "pool_max")`` → ``BRINK_DB__POOL_MAX``."""
    parts = [str(part) for part in location if not isinstance(part, int)]
    return ENV_PREFIX + ENV_NESTED_DELIMITER.join(parts).upper()


def _knob_env_names(text: str) -> str:
    """``breaker.min_calls`` in a resilience message → ``BRINK_RESILIENCE__BREAKER__MIN_CALLS``."""
    return _KNOB.sub(lambda match: env_name(("resilience", *match.groups())), text)


_KNOB = re.compile(r"\b([a-z]+)\.([a-z_]+)\b")
_SECRET = {("admin_token",), ("db", "dsn")}
"""Settings whose value is never echoed: the token, and a DSN (it may carry a password)."""
_VALUE_ERROR = "Value error, "


def _unknown_names(environ: Mapping[str, str]) -> list[str]:
    """``BRINK_*`` variables that name no setting (``BRINK_DB__POOLMAX`` is caught by the group).

    pydantic-settings only reads the names it knows, so a typo in a top-level name would
    otherwise be ignored silently and the default used instead.
    """
    known = {name.upper() for name in Settings.model_fields}
    return sorted(
        name
        for name in environ
        if name.upper().startswith(ENV_PREFIX)
        and name[len(ENV_PREFIX) :].upper().split(ENV_NESTED_DELIMITER)[0] not in known
    )


def _problem(error: ErrorDetails) -> str:
    location = tuple(error["loc"])
    shown = error.get("input")
    hidden = location[:2] in _SECRET or location[:1] in _SECRET or isinstance(shown, dict)
    value = "" if hidden else f"={shown!r}"
    message = error["msg"].removeprefix(_VALUE_ERROR)
    return f"{env_name(location)}{value}: {message}"


def load_settings(**overrides: object) -> Settings:
    """Read and validate the settings, or raise :class:`SettingsError` naming every bad one.

    The message is one line, so a process that fails to start says why in one line.
    """
    problems = [f"{name}: no such setting" for name in _unknown_names(os.environ)]
    try:
        settings = Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        problems += [_problem(error) for error in exc.errors()]
    except SourceError as exc:  # a group set as a whole (BRINK_DB=...) that is not JSON
        field = re.search(r'field "(\w+)"', str(exc))
        name = env_name((field.group(1),)) if field else ENV_PREFIX + "*"
        problems.append(f"{name}: not valid JSON; set one value as {name}__<NAME>")
    if problems:
        raise SettingsError("invalid setting " + "; ".join(problems))
    return settings
