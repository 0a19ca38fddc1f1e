"""Helpers the tests share: the handle of a spawned server, polling against a deadline."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from prometheus_client.parser import text_string_to_metric_families

from loadtests.native.process import ManagedProcess


@dataclass
class Served:
    """A server running in a child process."""

    base_url: str
    process: ManagedProcess


Spawn = Callable[..., Served]


async def eventually(
    check: Callable[[], Awaitable[bool]], timeout_s: float = 10.0, what: str = "condition"
) -> None:
    """Poll ``check`` until it is true; fail after ``timeout_s``. No fixed sleeps."""
    deadline = time.monotonic() + timeout_s
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not reached within {timeout_s} s")
        await asyncio.sleep(0.02)


def sample_value(metrics_text: str, name: str, labels: dict[str, str] | None = None) -> float:
    """The value of one sample in Prometheus text; 0.0 when absent."""
    for family in text_string_to_metric_families(metrics_text):
        for sample in family.samples:
            if sample.name == name and (labels is None or sample.labels == labels):
                return float(sample.value)
    return 0.0
