"""Client-side retries in the load generator: the load generator can be the storm.

Pure (no gevent, no Locust): a :class:`ClientRetry` decides whether a failed attempt is tried
again and how long to wait first. ``none`` never retries; ``naive`` retries at once, a fixed
number of times (what most clients do); ``budgeted`` waits a capped exponential backoff with
full jitter, tries at most 3 times, and spends a retry budget of about 10% of the requests
(the same :class:`~demo_service.resilience.retry.RetryBudget` the service uses).

A retry sends the same request again, ``Idempotency-Key`` included: a retried order the
service already committed comes back as a replay (200), never as a second order, and the order
ledger (:mod:`loadtests.ledger`) logs every attempt under that one key.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable

from demo_service.resilience.retry import RetryBudget

POLICIES = ("none", "naive", "budgeted")
RETRYABLE = frozenset({"timeout", "connection", "http_500", "http_502", "http_503", "http_504"})
"""Failures worth another try; a 4xx or a wrong body is not."""


class ClientRetry:
    """One generator process's retry policy."""

    def __init__(
        self,
        policy: str = "none",
        naive_attempts: int = 4,
        base_delay_s: float = 0.05,
        max_delay_s: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
    ) -> None:
        if policy not in POLICIES:
            raise ValueError(f"client retry policy must be one of {POLICIES}, got {policy!r}")
        if naive_attempts < 1:
            raise ValueError("naive_attempts must be >= 1")
        self.policy = policy
        self.max_attempts = {"none": 1, "naive": naive_attempts, "budgeted": 3}[policy]
        self.base_delay_s, self.max_delay_s = base_delay_s, max_delay_s
        self.budget = RetryBudget(clock=clock) if policy == "budgeted" else None
        self.rng = rng or random.Random()

    def on_arrival(self) -> None:
        """Every arrival pays into the budget."""
        if self.budget is not None:
            self.budget.record_call()

    def retry_after(self, error: str | None, attempt: int) -> float | None:
        """Seconds to wait before trying again after ``attempt`` failed; None: give up."""
        if error not in RETRYABLE or attempt >= self.max_attempts:
            return None
        if self.budget is None:
            return 0.0
        if not self.budget.try_spend():
            return None
        ceiling = min(self.max_delay_s, self.base_delay_s * 2 ** (attempt - 1))
        return self.rng.uniform(0, ceiling)
