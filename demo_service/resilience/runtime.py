"""The live resilience mechanisms of one service process, and the switch that changes them.

:class:`Resilience` holds one of each mechanism: the :class:`Deadlines`, a retry policy per
target (``external``, ``db``), the circuit breaker and the bulkhead of the external API, and the
:class:`Admission` state the shedding middleware reads. :meth:`Resilience.apply` switches to a
new :class:`ResilienceConfig` live: knobs that can change in place do (bulkhead size, static
limit, queue time); a mechanism whose knobs changed is rebuilt (a new breaker starts closed, a
new retry policy with a fresh budget); a mechanism whose knobs did not change keeps its state.
Requests already under way finish with the objects they started with. The preset in force is
exported as ``brink_resilience_preset{preset}`` (1 for it, 0 for the others), so a dashboard
shows which one a run used and when it was switched.

External calls go bulkhead → breaker → retry → a deadline per attempt (``call_external`` and
``external_deadline``): the bulkhead caps what a slow dependency can hold, the breaker sees one
outcome per call (retries included), and each attempt gets its own deadline.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Literal, TypeVar, get_args

from demo_service.external import ExternalError
from demo_service.metrics import ResilienceMetrics
from demo_service.resilience.adaptive import AimdLimiter
from demo_service.resilience.breaker import CircuitBreaker, State
from demo_service.resilience.bulkhead import Bulkhead
from demo_service.resilience.deadlines import STAGES as DEADLINE_STAGES
from demo_service.resilience.deadlines import Deadline, Deadlines
from demo_service.resilience.presets import (
    Overrides,
    PresetName,
    ResilienceConfig,
    RetryConfig,
    RetryPolicyName,
    combine,
    merge,
)
from demo_service.resilience.retry import (
    BudgetedRetry,
    NaiveRetry,
    NoRetry,
    RetryBudget,
    RetryPolicy,
    transient_db,
    transient_external,
)
from demo_service.resilience.shedding import SHED_REASONS, Admission, Limiter, StaticLimiter

T = TypeVar("T")
Target = Literal["external", "db"]
TARGETS: tuple[Target, ...] = ("external", "db")
EXTERNAL = "external"


def _breaker_failure(exc: BaseException) -> bool:
    """What counts against the external API: transient failures and a full client pool."""
    if not isinstance(exc, Exception):
        return False
    full_pool = isinstance(exc, ExternalError) and exc.outcome == "pool_timeout"
    return full_pool or transient_external(exc)


def _seconds(value: float) -> float | None:
    return value or None  # 0 in a config: no deadline


class Resilience:
    """The mechanisms in use now; ``apply`` (or ``update``) changes them without a restart."""

    deadlines: Deadlines
    retry: dict[Target, RetryPolicy]
    breaker: CircuitBreaker

    def __init__(
        self,
        metrics: ResilienceMetrics,
        preset: PresetName = "fragile",
        overrides: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> None:
        self._metrics = metrics
        self.admission = Admission(metrics)
        self.bulkhead = Bulkhead(EXTERNAL, None, 0.0, metrics)
        self._config: ResilienceConfig | None = None
        self._preset: PresetName = preset
        self._overrides: Overrides = combine({}, overrides or {})
        self._start_up = (self._preset, self._overrides)
        self._start_counters_at_zero()
        self.apply(merge(preset, self._overrides))
        self._publish_preset()

    # What is in force.

    @property
    def config(self) -> ResilienceConfig:
        assert self._config is not None
        return self._config

    @property
    def preset(self) -> PresetName:
        return self._preset

    @property
    def overrides(self) -> Overrides:
        return combine({}, self._overrides)

    @property
    def external_deadline(self) -> Deadline:
        return self.deadlines.external

    # Switching.

    def update(
        self, preset: PresetName | None, overrides: Mapping[str, Mapping[str, Any]]
    ) -> ResilienceConfig:
        """Switch live. A new ``preset`` starts from that preset alone (earlier overrides are
        dropped), then ``overrides`` apply; without one, ``overrides`` add to those in force.
        Raises :class:`pydantic.ValidationError` and changes nothing when the result is invalid.
        """
        if preset is None:
            preset, overrides = self._preset, combine(self._overrides, overrides)
        config = merge(preset, overrides)
        self._preset, self._overrides = preset, combine({}, overrides)
        self.apply(config)
        self._publish_preset()
        return config

    def reset(self) -> ResilienceConfig:
        """Back to the preset and overrides the process started with."""
        return self.update(*self._start_up)

    def apply(self, config: ResilienceConfig) -> None:
        """Make ``config`` the one in force; mechanisms whose knobs did not change keep state."""
        old, metrics = self._config, self._metrics
        if old is None or config.deadlines != old.deadlines:
            deadlines = config.deadlines
            self.deadlines = Deadlines(
                metrics,
                db_acquire=_seconds(deadlines.db_acquire_s),
                db_statement=_seconds(deadlines.db_statement_s),
                external=_seconds(deadlines.external_s),
            )
        if old is None or config.retry != old.retry:
            self.retry = {target: _retry_policy(config.retry, metrics) for target in TARGETS}
        if old is None or config.breaker != old.breaker:
            if old is not None:  # calls still inside the old one must not move the shared gauge
                self.breaker.enabled = False
            self.breaker = CircuitBreaker(
                EXTERNAL,
                metrics,
                **config.breaker.model_dump(exclude={"enabled"}),
                failures=_breaker_failure,
                enabled=config.breaker.enabled,
            )
        bulkhead = config.bulkhead
        self.bulkhead.max_wait_s = bulkhead.max_wait_s
        self.bulkhead.resize(bulkhead.limit if bulkhead.enabled else None)
        self.admission.max_queue_s = config.shedding.max_queue_s
        self.admission.limiter = self._limiter(config, old)
        self._config = config

    def _start_counters_at_zero(self) -> None:
        """Create every labelled counter child now, at 0.

        A child that first appears at its first increment has no earlier sample, so ``rate()``
        cannot see that increment: the first shed request or breaker opening would be invisible.
        """
        m = self._metrics
        for target in TARGETS:
            for counter in (m.attempts, m.calls, m.retry_budget_exhausted):
                counter.labels(target)
            for policy in get_args(RetryPolicyName):
                if policy != "none":
                    m.retries.labels(target, policy)
        for state in State:
            m.breaker_transitions.labels(EXTERNAL, state.name.lower())
        m.breaker_rejected.labels(EXTERNAL)
        for reason in SHED_REASONS:
            m.shed.labels(reason)
        for stage in DEADLINE_STAGES:
            m.deadline_exceeded.labels(stage)

    def _publish_preset(self) -> None:
        """``brink_resilience_preset{preset}``: 1 for the one in force, 0 for the others."""
        for name in get_args(PresetName):
            self._metrics.preset.labels(name).set(int(name == self._preset))

    def _limiter(self, config: ResilienceConfig, old: ResilienceConfig | None) -> Limiter | None:
        shedding, current = config.shedding, self.admission.limiter
        if not shedding.enabled:
            return None
        if shedding.limiter == "static":
            if isinstance(current, StaticLimiter):
                current.limit = shedding.limit
                return current
            return StaticLimiter(shedding.limit)
        unchanged = old is not None and old.adaptive == config.adaptive
        if isinstance(current, AimdLimiter) and unchanged:
            return current  # keep what it has learnt
        return AimdLimiter(config.adaptive.aimd())

    # Guarded calls.

    async def call_external(self, attempt: Callable[[], Awaitable[T]]) -> T:
        """Bulkhead → breaker → retry policy → ``attempt`` (which applies the attempt deadline)."""
        breaker, policy = self.breaker, self.retry["external"]
        async with self.bulkhead, breaker:
            return await policy.call(EXTERNAL, attempt, transient_external)

    async def call_db(self, transaction: Callable[[], Awaitable[T]]) -> T:
        """``transaction`` (checkout included) retried on transient DB errors by the policy."""
        return await self.retry["db"].call("db", transaction, transient_db)


def _retry_policy(config: RetryConfig, metrics: ResilienceMetrics) -> RetryPolicy:
    if config.policy == "none":
        return NoRetry(metrics)
    if config.policy == "naive":
        return NaiveRetry(metrics, config.naive_attempts)

    def budget() -> RetryBudget:
        return RetryBudget(config.budget_ratio, config.budget_window_s, config.budget_min_retries)

    return BudgetedRetry(
        metrics,
        attempts=config.budgeted_attempts,
        base_delay_s=config.base_delay_s,
        max_delay_s=config.max_delay_s,
        budget=budget,
    )
