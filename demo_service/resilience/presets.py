"""Resilience presets as data: for every mechanism, whether it is on and with which knobs.

A :class:`ResilienceConfig` is one complete choice; :data:`PRESETS` holds three of them:

* ``fragile``: what most code does. No deadlines (a pool checkout waits as long as it takes, no
  statement timeout, only the HTTP client's generous timeouts), naive immediate retries, no
  breaker, no shedding, no bulkhead: unbounded queueing everywhere.
* ``resilient``: deadlines on every waiting stage, budgeted retries with jittered backoff, a
  circuit breaker and a bulkhead on the external API, and a static admission limit of 25 in
  flight (the limit that recovered the metastable failure in ``FIELD-NOTES.md``).
* ``adaptive``: ``resilient`` with an AIMD admission limit instead of the static one.

Overrides are partial configs (:class:`ResilienceOverrides`, only the fields given count) laid
over a preset by :func:`merge`; the merged result is validated as a whole, so a knob that only
makes sense with another one (``breaker.min_calls`` ≤ ``breaker.window``) is checked where both
are known. A deadline of 0 means none.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import ConfigDict, Field, model_validator

from demo_service.resilience.adaptive import AimdConfig
from demo_service.validation import NumbersAreNotBooleans

PresetName = Literal["fragile", "resilient", "adaptive"]
RetryPolicyName = Literal["none", "naive", "budgeted"]
LimiterName = Literal["static", "aimd"]

Overrides = dict[str, dict[str, Any]]
"""``{group: {knob: value}}``, e.g. ``{"shedding": {"limit": 40}}``."""

DeadlineSeconds = Annotated[float, Field(ge=0, le=600, description="0: no deadline")]


class _Group(NumbersAreNotBooleans):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DeadlinesConfig(_Group):
    """Time limits of the three waiting stages, in seconds; 0 turns one off."""

    db_acquire_s: DeadlineSeconds = 0.25
    """Waiting for a pool connection; past it the request gets 503 (pool exhausted)."""
    db_statement_s: DeadlineSeconds = 0.5
    """Postgres ``statement_timeout`` for each statement of the order transaction (lock waits
    and the fault holds included); past it 503."""
    external_s: DeadlineSeconds = 0.3
    """Each attempt at the external API (pool wait, connect, read); past it 504 or a retry."""


class RetryConfig(_Group):
    """Retries of transient failures, for the external API and for the order transaction."""

    policy: RetryPolicyName = "budgeted"
    naive_attempts: int = Field(4, ge=1, le=10)
    """Tries in all under ``naive`` (immediate retries)."""
    budgeted_attempts: int = Field(3, ge=1, le=10)
    """Tries in all under ``budgeted``."""
    base_delay_s: float = Field(0.05, gt=0, le=10)
    max_delay_s: float = Field(1.0, gt=0, le=60)
    budget_ratio: float = Field(0.1, ge=0, le=1)
    """Retries allowed per call over the budget's window (plus ``budget_min_retries``)."""
    budget_window_s: float = Field(10.0, gt=0, le=600)
    budget_min_retries: int = Field(3, ge=0, le=1_000)


class BreakerConfig(_Group):
    """The circuit breaker on the external API."""

    enabled: bool = True
    failure_ratio: float = Field(0.5, gt=0, le=1)
    window: int = Field(20, ge=1, le=10_000)
    min_calls: int = Field(10, ge=1, le=10_000)
    cooldown_s: float = Field(5.0, ge=0, le=600)
    probes: int = Field(1, ge=1, le=100)


class SheddingConfig(_Group):
    """Admission control in front of every route but health, metrics and admin."""

    enabled: bool = True
    limiter: LimiterName = "static"
    """``static``: at most ``limit`` in flight; ``aimd``: as the ``adaptive`` knobs say."""
    limit: int = Field(25, ge=1, le=100_000)
    max_queue_s: float = Field(0.0, ge=0, le=10)
    """How long a request may wait for a slot before it is shed; 0: shed at once."""


class BulkheadConfig(_Group):
    """The concurrency limit of calls to the external API (the shipping-quote route)."""

    enabled: bool = True
    limit: int = Field(10, ge=1, le=100_000)
    max_wait_s: float = Field(0.0, ge=0, le=60)


class AdaptiveConfig(_Group):
    """The AIMD admission limit (``shedding.limiter = "aimd"``); see ``adaptive.py``."""

    initial_limit: int = Field(20, ge=1, le=100_000)
    min_limit: int = Field(2, ge=1, le=100_000)
    max_limit: int = Field(200, ge=1, le=100_000)
    target_latency_s: float = Field(0.1, gt=0, le=60)
    backoff_ratio: float = Field(0.7, gt=0, lt=1)
    increase: float = Field(1.0, gt=0, le=1_000)
    smoothing: float = Field(0.2, gt=0, le=1)
    decrease_interval_s: float = Field(0.25, ge=0, le=60)
    min_utilisation: float = Field(0.5, ge=0, le=1)

    def aimd(self) -> AimdConfig:
        return AimdConfig(**self.model_dump())


class _Groups(_Group):
    deadlines: DeadlinesConfig = DeadlinesConfig()
    retry: RetryConfig = RetryConfig()
    breaker: BreakerConfig = BreakerConfig()
    shedding: SheddingConfig = SheddingConfig()
    bulkhead: BulkheadConfig = BulkheadConfig()
    adaptive: AdaptiveConfig = AdaptiveConfig()


class ResilienceConfig(_Groups):
    """Every mechanism's switch and knobs; the defaults are the ``resilient`` preset."""

    @model_validator(mode="after")
    def _consistent(self) -> ResilienceConfig:
        problems = []
        breaker, retry, aimd = self.breaker, self.retry, self.adaptive
        if breaker.min_calls > breaker.window:
            problems.append(
                f"breaker.min_calls ({breaker.min_calls}) exceeds breaker.window ({breaker.window})"
            )
        if retry.base_delay_s > retry.max_delay_s:
            problems.append(
                f"retry.base_delay_s ({retry.base_delay_s:g}) exceeds"
                f" retry.max_delay_s ({retry.max_delay_s:g})"
            )
        if not aimd.min_limit <= aimd.initial_limit <= aimd.max_limit:
            problems.append(
                "need adaptive.min_limit <= adaptive.initial_limit <= adaptive.max_limit"
                f" ({aimd.min_limit}, {aimd.initial_limit}, {aimd.max_limit})"
            )
        if problems:
            raise ValueError("; ".join(problems))
        return self


class ResilienceOverrides(_Groups):
    """A partial :class:`ResilienceConfig`: only the fields given (``model_fields_set``) count."""

    def overrides(self) -> Overrides:
        dumped: Overrides = self.model_dump(exclude_unset=True, include=set(_GROUPS))
        return {group: knobs for group, knobs in dumped.items() if knobs}


_GROUPS = tuple(_Groups.model_fields)

RESILIENT = ResilienceConfig()
FRAGILE = ResilienceConfig(
    deadlines=DeadlinesConfig(db_acquire_s=0, db_statement_s=0, external_s=0),
    retry=RetryConfig(policy="naive"),
    breaker=BreakerConfig(enabled=False),
    shedding=SheddingConfig(enabled=False),
    bulkhead=BulkheadConfig(enabled=False),
)
ADAPTIVE = RESILIENT.model_copy(
    update={"shedding": RESILIENT.shedding.model_copy(update={"limiter": "aimd"})}
)
PRESETS: Mapping[PresetName, ResilienceConfig] = {
    "fragile": FRAGILE,
    "resilient": RESILIENT,
    "adaptive": ADAPTIVE,
}


def combine(
    first: Mapping[str, Mapping[str, Any]], then: Mapping[str, Mapping[str, Any]]
) -> Overrides:
    """Overrides ``first`` with ``then`` laid over them, knob by knob."""
    combined = {group: dict(knobs) for group, knobs in first.items()}
    for group, knobs in then.items():
        combined.setdefault(group, {}).update(knobs)
    return combined


def merge(preset: PresetName, overrides: Mapping[str, Mapping[str, Any]]) -> ResilienceConfig:
    """The preset with ``overrides`` laid over it; :class:`pydantic.ValidationError` if invalid."""
    return ResilienceConfig.model_validate(combine(PRESETS[preset].model_dump(), overrides))
