"""Plays a :class:`~loadtests.faults.spec.FaultSchedule` against an injector, in the background.

The clock and the sleep are injected, so the timeline is tested without waiting. A failing
injector call is recorded (and logged), never raised: a fault that could not be set is a fact
for the report, and the load test around it goes on. ``stop()`` undoes whatever is still in force,
so a run never leaves the lab paused, throttled or slowed down.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Self

from loadtests.faults.injector import Injector
from loadtests.faults.spec import EventKind, FaultAction, FaultSchedule

_log = logging.getLogger(__name__)

MAX_SLEEP_S = 0.1
"""Longest single sleep between events: how quickly the thread notices ``stop()``."""


@dataclass(frozen=True)
class AppliedFault:
    """One event the runner carried out, for reports and dashboard annotations."""

    wall_time: float
    """``time.time()`` when it was carried out."""
    t_s: float
    """Seconds after the schedule started, on the runner's clock."""
    kind: EventKind
    action: str
    ok: bool
    error: str | None = None
    recovery_s: float | None = None
    """Seconds the part took to recover, for faults that measure it (``postgres.kill_backend``:
    from the kill until Postgres accepts connections again); None otherwise."""

    @property
    def result(self) -> str:
        """How it went, in words: ``ok``, ``ok, recovered in 0.34 s``, ``failed: <error>``."""
        if not self.ok:
            return f"failed: {self.error}"
        if self.recovery_s is None:
            return "ok"
        return f"ok, recovered in {self.recovery_s:.2f} s"


class FaultRunner:
    """Runs a schedule against an injector in a background thread, on an injectable clock."""

    def __init__(
        self,
        schedule: FaultSchedule,
        injector: Injector,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        log: Callable[[str], None] = _log.info,
        *,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.schedule = schedule
        self.injector = injector
        self._clock, self._sleep, self._log, self._wall = clock, sleep, log, wall_clock
        self._events = schedule.events()
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._applied: list[AppliedFault] = []
        self._active: list[FaultAction] = []
        self._thread: threading.Thread | None = None
        self._t0 = 0.0

    def start(self) -> None:
        """t=0 is now."""
        if self._thread is not None:
            raise RuntimeError("a FaultRunner starts once")
        self._t0 = self._clock()
        self._thread = threading.Thread(target=self._run, name="brink-faults", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Undo whatever is still applied (latest first), join the thread."""
        self._stopping.set()
        if self._thread is not None:
            self._thread.join()
        with self._lock:
            active, self._active = self._active, []
        for action in reversed(active):
            self._do("undo", action)

    def wait(self, timeout_s: float | None = None) -> bool:
        """Block until every event of the schedule ran (or ``stop()``); False on timeout."""
        if self._thread is None:
            return True
        self._thread.join(timeout_s)
        return not self._thread.is_alive()

    @property
    def stopping(self) -> threading.Event:
        """Set by ``stop()``; an injected ``sleep`` may wait on it to wake up at once."""
        return self._stopping

    @property
    def applied(self) -> list[AppliedFault]:
        """Every event carried out so far, in order (a copy)."""
        with self._lock:
            return list(self._applied)

    @property
    def active(self) -> list[FaultAction]:
        """Actions applied and not yet undone (a copy)."""
        with self._lock:
            return list(self._active)

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _run(self) -> None:
        for at_s, kind, action in self._events:
            while (remaining := at_s - self._elapsed()) > 0:
                if self._stopping.is_set():
                    return
                self._sleep(min(remaining, MAX_SLEEP_S))
            if self._stopping.is_set():
                return
            if kind == "apply":
                self._do("apply", action)
            elif self._take(action):
                self._do("undo", action)

    def _take(self, action: FaultAction) -> bool:
        """Remove ``action`` from the active ones; False if it is not active (its apply failed)."""
        with self._lock:
            if action not in self._active:
                return False
            self._active.remove(action)
            return True

    def _do(self, kind: EventKind, action: FaultAction) -> None:
        t_s = self._elapsed()
        error: str | None = None
        recovery_s: float | None = None
        try:
            if kind == "apply":
                recovery_s = self.injector.apply(action)
            else:
                self.injector.undo(action)
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"
        ok = error is None
        record = AppliedFault(self._wall(), t_s, kind, str(action), ok, error, recovery_s)
        with self._lock:
            self._applied.append(record)
            if kind == "apply" and ok and not action.instant:
                self._active.append(action)
        self._log(f"t={t_s:.1f}s {kind} {action}: {record.result}")

    def _elapsed(self) -> float:
        return self._clock() - self._t0
