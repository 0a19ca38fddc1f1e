"""A background task that measures how late the event loop runs a periodic timer."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from prometheus_client import Histogram


async def _measure(histogram: Histogram, interval_s: float) -> None:
    loop = asyncio.get_running_loop()
    while True:
        planned = loop.time() + interval_s
        await asyncio.sleep(interval_s)
        histogram.observe(max(0.0, loop.time() - planned))


@contextlib.asynccontextmanager
async def loop_lag_monitor(histogram: Histogram, interval_s: float) -> AsyncIterator[None]:
    """Observe event-loop lag every ``interval_s`` for as long as the context is open."""
    task = asyncio.create_task(_measure(histogram, interval_s), name="loop-lag-monitor")
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
