"""FaultRunner on a fake clock: events at the right times, stop() undoes, errors are recorded."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

import pytest

from loadtests.faults.injector import CompositeInjector, ProcessInjector
from loadtests.faults.runner import AppliedFault, FaultRunner
from loadtests.faults.spec import FaultAction, FaultSchedule

JOIN_S = 10.0  # a bound on joining the runner's thread, never a wait for time to pass


@dataclass
class FakeClock:
    """Time moves only when the runner sleeps; past ``gate_s`` it waits for ``release``."""

    now: float = 1_000.0
    gate_s: float | None = None
    reached_gate: threading.Event = field(default_factory=threading.Event)
    release: threading.Event | None = None

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        assert 0 < seconds <= 0.1 + 1e-9
        if self.gate_s is not None and self.now - 1_000.0 >= self.gate_s:
            self.reached_gate.set()
            assert self.release is not None
            self.release.wait(JOIN_S)
            return
        self.now += seconds


@dataclass
class RecordingInjector:
    clock: FakeClock
    fail: dict[tuple[str, str], Exception] = field(default_factory=dict)
    calls: list[tuple[float, str, str]] = field(default_factory=list)
    resets: int = 0

    def apply(self, action: FaultAction) -> None:
        self._call("apply", action)

    def undo(self, action: FaultAction) -> None:
        self._call("undo", action)

    def reset(self) -> None:
        self.resets += 1

    def _call(self, kind: str, action: FaultAction) -> None:
        self.calls.append((round(self.clock.now - 1_000.0, 6), kind, str(action)))
        error = self.fail.get((kind, str(action)))
        if error is not None:
            raise error


def make_runner(text: str, clock: FakeClock) -> tuple[FaultRunner, RecordingInjector, list[str]]:
    injector = RecordingInjector(clock)
    lines: list[str] = []
    runner = FaultRunner(
        FaultSchedule.parse(text),
        injector,
        clock=clock,
        sleep=clock.sleep,
        log=lines.append,
        wall_clock=lambda: 1.7e9 + clock.now,
    )
    return runner, injector, lines


def test_applies_and_undoes_at_the_scheduled_times() -> None:
    clock = FakeClock()
    runner, injector, lines = make_runner(
        "at 0s resilience.preset=fragile; at 2.5s set slow_api.extra_latency_s=0.2 for 10s;"
        "at 4s postgres.restart; at 12.5s slow_api.extra_latency_s=0.5 for 1s",
        clock,
    )
    runner.start()
    assert runner.wait(JOIN_S)
    assert [(kind, action) for _, kind, action in injector.calls] == [
        ("apply", "resilience.preset=fragile"),
        ("apply", "slow_api.extra_latency_s=0.2"),
        ("apply", "postgres.restart"),
        ("undo", "slow_api.extra_latency_s=0.2"),
        ("apply", "slow_api.extra_latency_s=0.5"),
        ("undo", "slow_api.extra_latency_s=0.5"),
    ]
    times = [time for time, _, _ in injector.calls]
    assert times == pytest.approx([0.0, 2.5, 4.0, 12.5, 12.5, 13.5])
    applied = runner.applied
    assert [(a.kind, a.action, a.ok) for a in applied] == [
        (kind, action, True) for _, kind, action in injector.calls
    ]
    assert [a.t_s for a in applied] == pytest.approx([0.0, 2.5, 4.0, 12.5, 12.5, 13.5])
    assert applied[1].wall_time == pytest.approx(1.7e9 + 1_002.5)
    assert lines[1] == "t=2.5s apply slow_api.extra_latency_s=0.2: ok"
    # the preset set for good is still in force; the restart never is
    assert runner.active == [FaultAction("resilience", "preset", "fragile")]
    runner.stop()
    assert injector.calls[-1][1:] == ("undo", "resilience.preset=fragile")
    assert injector.calls[-1][0] == pytest.approx(13.5)
    assert runner.active == []


def test_stop_undoes_active_faults_latest_first_and_skips_the_rest() -> None:
    clock = FakeClock(gate_s=5.0)
    runner, injector, _ = make_runner(
        "at 1s service.pause for 100s; at 2s slow_api.extra_latency_s=0.2;"
        "at 3s postgres.restart; at 4s service.cpu=0.3 for 1s; at 60s service.db_latency_s=1",
        clock,
    )
    clock.release = runner.stopping  # the sleep wakes up when stop() is called, as a real one
    with runner:
        assert clock.reached_gate.wait(JOIN_S)
    kinds = [(kind, action) for _, kind, action in injector.calls]
    assert kinds == [
        ("apply", "service.pause"),
        ("apply", "slow_api.extra_latency_s=0.2"),
        ("apply", "postgres.restart"),
        ("apply", "service.cpu=0.3"),
        ("undo", "service.cpu=0.3"),
        ("undo", "slow_api.extra_latency_s=0.2"),
        ("undo", "service.pause"),
    ]
    assert all(time <= 5.0 + 1e-6 for time, _, _ in injector.calls)
    assert not any("db_latency_s" in action for _, _, action in injector.calls)
    assert runner.active == []


def test_an_injector_error_is_recorded_not_raised() -> None:
    clock = FakeClock()
    runner, injector, lines = make_runner(
        "at 1s slow_api.outage=hang for 2s; at 2s service.pause for 2s; at 5s postgres.kill",
        clock,
    )
    injector.fail[("apply", "slow_api.outage=hang")] = RuntimeError("slow API answered 401")
    injector.fail[("undo", "service.pause")] = ProcessLookupError("no such process")
    runner.start()
    assert runner.wait(JOIN_S)
    runner.stop()
    # the failed apply is not undone; the failed undo does not stop the schedule
    assert [(kind, action) for _, kind, action in injector.calls] == [
        ("apply", "slow_api.outage=hang"),
        ("apply", "service.pause"),
        ("undo", "service.pause"),
        ("apply", "postgres.kill"),
    ]
    outcomes = [(a.action, a.ok, a.error) for a in runner.applied]
    assert outcomes == [
        ("slow_api.outage=hang", False, "RuntimeError: slow API answered 401"),
        ("service.pause", True, None),
        ("service.pause", False, "ProcessLookupError: no such process"),
        ("postgres.kill", True, None),
    ]
    assert lines[0] == (
        "t=1.0s apply slow_api.outage=hang: failed: RuntimeError: slow API answered 401"
    )


def test_a_runner_starts_once() -> None:
    runner, _, _ = make_runner("at 0s postgres.restart", FakeClock())
    runner.start()
    with pytest.raises(RuntimeError, match="starts once"):
        runner.start()
    runner.stop()


def test_stop_before_start_is_harmless() -> None:
    runner, injector, _ = make_runner("at 0s service.pause", FakeClock())
    runner.stop()
    assert injector.calls == []
    assert runner.wait(0)


@dataclass
class FakeProcesses:
    calls: list[tuple[str, str, float | None]] = field(default_factory=list)
    closed: bool = False

    def close(self) -> None:
        self.closed = True

    def pause(self, part: str) -> None:
        self.calls.append(("pause", part, None))

    def resume(self, part: str) -> None:
        self.calls.append(("resume", part, None))

    def restart(self, part: str) -> None:
        self.calls.append(("restart", part, None))

    def kill(self, part: str) -> None:
        self.calls.append(("kill", part, None))

    def kill_backend(self, part: str) -> float:
        self.calls.append(("kill_backend", part, None))
        return 0.34

    def throttle_cpu(self, part: str, cpus: float | None) -> None:
        self.calls.append(("cpu", part, cpus))


def test_process_injector_undoes_to_the_previous_state() -> None:
    processes = FakeProcesses()
    injector = ProcessInjector(processes)
    half, third = FaultAction("service", "cpu", 0.5), FaultAction("service", "cpu", 0.3)
    injector.apply(half)
    injector.apply(third)
    injector.undo(third)  # back to the half core in force before
    injector.apply(FaultAction("postgres", "pause"))
    injector.apply(FaultAction("postgres", "restart"))
    injector.undo(FaultAction("postgres", "restart"))  # instantaneous: nothing to undo
    injector.reset()
    assert processes.calls == [
        ("cpu", "service", 0.5),
        ("cpu", "service", 0.3),
        ("cpu", "service", 0.5),
        ("pause", "postgres", None),
        ("restart", "postgres", None),
        ("resume", "postgres", None),
        ("cpu", "service", None),
    ]


def test_kill_backend_is_instant_and_its_recovery_time_is_recorded() -> None:
    processes = FakeProcesses()
    lines: list[str] = []
    clock = FakeClock()
    schedule = FaultSchedule.parse("at 1s postgres.kill_backend; at 2s postgres.pause for 1s")
    injector = CompositeInjector(None, processes)
    runner = FaultRunner(schedule, injector, clock, clock.sleep, lines.append)
    runner.start()
    assert runner.wait(JOIN_S)
    runner.stop()
    assert processes.calls == [
        ("kill_backend", "postgres", None),
        ("pause", "postgres", None),
        ("resume", "postgres", None),
    ]
    kill, pause, resume = runner.applied
    assert (kill.action, kill.ok, kill.recovery_s) == ("postgres.kill_backend", True, 0.34)
    assert (pause.recovery_s, resume.recovery_s) == (None, None)
    assert lines[0] == "t=1.0s apply postgres.kill_backend: ok, recovered in 0.34 s"
    assert runner.active == []  # nothing to undo


def test_an_event_says_how_it_went() -> None:
    def event(ok: bool, error: str | None = None, recovery_s: float | None = None) -> str:
        return AppliedFault(
            1.7e9, 1.0, "apply", "postgres.kill_backend", ok, error, recovery_s
        ).result

    assert event(True) == "ok"
    assert event(True, recovery_s=0.3449) == "ok, recovered in 0.34 s"
    assert event(False, "PostgresError: no client backend") == (
        "failed: PostgresError: no client backend"
    )


def test_composite_routes_by_kind_and_names_a_missing_injector() -> None:
    clock = FakeClock()
    knobs = RecordingInjector(clock)
    processes = FakeProcesses()
    injector = CompositeInjector(knobs, processes)
    injector.apply(FaultAction("service", "db_latency_s", 0.1))
    injector.apply(FaultAction("service", "pause"))
    injector.undo(FaultAction("service", "pause"))
    injector.reset()
    assert knobs.calls == [(0.0, "apply", "service.db_latency_s=0.1")]
    assert knobs.resets == 1
    assert processes.calls == [("pause", "service", None), ("resume", "service", None)]
    with injector:
        pass
    assert processes.closed  # the parts holding resources are closed with the composite
    with pytest.raises(RuntimeError, match="no injector for process faults"):
        CompositeInjector(knobs, None).apply(FaultAction("postgres", "kill"))
