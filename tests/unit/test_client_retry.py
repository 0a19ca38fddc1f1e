"""Client-side retry policies of the load generator, with a fake clock."""

from __future__ import annotations

import random

import pytest

from loadtests.client_retry import ClientRetry


def _amplification(retry: ClientRetry, arrivals: int, clock: list[float]) -> float:
    attempts = 0
    for _ in range(arrivals):
        clock[0] += 0.01  # 100 arrivals per second, every one failing with a timeout
        retry.on_arrival()
        attempt = 1
        attempts += 1
        while retry.retry_after("timeout", attempt) is not None:
            attempt += 1
            attempts += 1
    return attempts / arrivals


def test_none_never_retries() -> None:
    assert ClientRetry("none").retry_after("timeout", 1) is None


def test_naive_retries_at_once_a_fixed_number_of_times() -> None:
    clock = [0.0]
    retry = ClientRetry("naive", naive_attempts=4, clock=lambda: clock[0])
    assert retry.retry_after("http_503", 1) == 0.0
    assert _amplification(retry, 1_000, clock) == 4.0


def test_budgeted_backs_off_with_jitter_and_stays_within_its_budget() -> None:
    clock = [0.0]
    retry = ClientRetry("budgeted", clock=lambda: clock[0], rng=random.Random(1))
    delays = [retry.retry_after("timeout", 2) for _ in range(3)]
    assert all(d is not None and 0 <= d <= 0.1 for d in delays)
    assert _amplification(retry, 2_000, clock) <= 1.2


@pytest.mark.parametrize("error", [None, "http_404", "http_409", "check", "client_error"])
def test_what_is_not_transient_is_not_retried(error: str | None) -> None:
    assert ClientRetry("naive").retry_after(error, 1) is None


def test_unknown_policy_is_refused() -> None:
    with pytest.raises(ValueError, match="naive"):
        ClientRetry("eager")
