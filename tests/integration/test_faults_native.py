"""The fault plane for real: knobs over the admin APIs, and signals on a running native stack.

One :class:`NativeStack` (private Postgres, slow API, demo service) for the module; every test
leaves it as it found it. No fixed sleeps: requests carry short timeouts, and waits poll against
a deadline.
"""

from __future__ import annotations

import os
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx2
import pytest

from loadtests.faults.injector import CompositeInjector, FaultError, KnobInjector
from loadtests.faults.native import NativeProcessFaults
from loadtests.faults.runner import FaultRunner
from loadtests.faults.spec import FaultAction, FaultSchedule, parse_action
from loadtests.native.process import free_port
from loadtests.native.stack import NativeStack, StackConfig

pytestmark = pytest.mark.integration

TOKEN = "faults-" + secrets.token_hex(12)
STALL_S = 0.5
"""A request that gets no answer within this long is stalled (the box may be busy: generous)."""
CPU_ITERATIONS = 20_000  # ~5-20 ms of PBKDF2 per /cpu request: the service, not the client, is busy
MEASURE_S = 2.5


def _distinct_ports(count: int) -> list[int]:
    ports: set[int] = set()
    while len(ports) < count:
        ports.add(free_port())
    return sorted(ports)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NativeStack]:
    service_port, slow_api_port, pg_port = _distinct_ports(3)
    config = StackConfig(
        service_port=service_port,
        slow_api_port=slow_api_port,
        pg_port=pg_port,
        run_dir=tmp_path_factory.mktemp("faults-stack"),
        extra_env={
            "BRINK_ADMIN_TOKEN": TOKEN,
            "BRINK_DB__CONNECT_TIMEOUT_S": "1",
            "BRINK_CPU__ITERATIONS": str(CPU_ITERATIONS),
        },
    )
    with NativeStack(config) as running:
        yield running


@pytest.fixture
def faults(stack: NativeStack) -> Iterator[NativeProcessFaults]:
    native = NativeProcessFaults(stack)
    try:
        yield native
    finally:
        native.close()


@pytest.fixture
def knobs(stack: NativeStack) -> Iterator[KnobInjector]:
    with KnobInjector(stack.urls["service"], stack.urls["slow_api"], TOKEN) as injector:
        yield injector
        injector.reset()


def _get(url: str, timeout_s: float = STALL_S) -> int | None:
    """The status, or None when no answer came within ``timeout_s``."""
    try:
        return httpx2.get(url, timeout=timeout_s).status_code
    except httpx2.TimeoutException:
        return None


def _poll(check: Callable[[], bool], deadline_s: float, what: str) -> None:
    deadline = time.monotonic() + deadline_s
    while not check():
        if time.monotonic() > deadline:
            pytest.fail(f"{what} not within {deadline_s:.0f} s")
        time.sleep(0.05)


def _admin(stack: NativeStack, base: str, path: str) -> dict[str, object]:
    headers = {"Authorization": f"Bearer {TOKEN}"}
    response = httpx2.get(stack.urls[base] + path, headers=headers, timeout=5)
    response.raise_for_status()
    answer: dict[str, object] = response.json()
    return answer


def test_knob_injector_applies_and_restores_every_api(
    stack: NativeStack, knobs: KnobInjector
) -> None:
    def control() -> dict[str, object]:
        return _admin(stack, "slow_api", "/control")

    def service() -> dict[str, object]:
        return _admin(stack, "service", "/admin/faults")

    def resilience() -> dict[str, object]:
        return _admin(stack, "service", "/admin/resilience")

    before = (control(), service(), resilience())
    assert before[2]["preset"] == "fragile"

    slower = parse_action("slow_api.extra_latency_s=0.2")
    knobs.apply(slower)
    assert control()["extra_latency_s"] == 0.2
    db = parse_action("service.db_latency_s=0.05")
    knobs.apply(db)
    assert service()["db_latency_s"] == 0.05
    preset = parse_action("resilience.preset=resilient")
    knobs.apply(preset)
    budgeted = parse_action("resilience.retry.policy=naive")
    knobs.apply(budgeted)
    state = resilience()
    assert state["preset"] == "resilient"
    assert state["overrides"] == {"retry": {"policy": "naive"}}

    knobs.undo(budgeted)  # back to plain resilient, no overrides
    state = resilience()
    assert (state["preset"], state["overrides"]) == ("resilient", {})
    knobs.undo(preset)
    knobs.undo(db)
    knobs.undo(slower)
    assert (control(), service(), resilience()) == before

    with pytest.raises(FaultError, match="422"):  # the server's own validation, reason included
        knobs.apply(FaultAction("slow_api", "capacity", 0))
    assert control() == before[0]


def test_pause_and_resume_postgres(stack: NativeStack, faults: NativeProcessFaults) -> None:
    ready = stack.urls["service"] + "/readyz"
    assert _get(ready, 5) == 200
    faults.pause("postgres")
    try:
        assert _get(ready) is None  # the connection attempt hangs: nothing is refused
    finally:
        faults.resume("postgres")
    assert _get(ready, 5) == 200


def test_pause_and_resume_slow_api(stack: NativeStack, faults: NativeProcessFaults) -> None:
    health = stack.urls["slow_api"] + "/healthz"
    faults.pause("slow_api")
    try:
        assert _get(health) is None
    finally:
        faults.resume("slow_api")
    assert _get(health, 5) == 200


def _backends(stack: NativeStack) -> set[int]:
    return set(stack.postgres.processes()[1:])


def test_restart_postgres_drops_every_connection(
    stack: NativeStack, faults: NativeProcessFaults
) -> None:
    """A restart is over in a blink (``pg_ctl restart`` waits for it): what shows is a new
    postmaster, every old connection gone, and the service ready again."""
    ready = stack.urls["service"] + "/readyz"
    assert _get(ready, 5) == 200
    old_pid, old_backends = stack.postgres.pid, _backends(stack)
    faults.restart("postgres")
    assert stack.postgres.pid != old_pid
    assert not old_backends & _backends(stack)
    _poll(lambda: _get(ready, 5) == 200, 30, "/readyz 200 again")


def test_kill_postgres_readyz_turns_503_then_200(
    stack: NativeStack, faults: NativeProcessFaults
) -> None:
    """Killed and kept down 2 s (a supervisor's delay), so the outage is seen on a busy box."""
    ready = stack.urls["service"] + "/readyz"
    old_pid = stack.postgres.pid
    seen: list[int | None] = []
    done = threading.Event()

    def watch() -> None:
        while not done.is_set():
            seen.append(_get(ready, 5))

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        NativeProcessFaults(stack, down_s=2.0).kill("postgres")
        back = len(seen)  # answers from here on were asked once Postgres was back
        _poll(lambda: 200 in seen[back:], 30, f"/readyz 200 again (seen {seen})")
    finally:
        done.set()
        watcher.join()
    assert stack.postgres.pid != old_pid
    assert 503 in seen[:back], f"/readyz never answered 503 while Postgres was down: {seen}"


def test_kill_the_slow_api_starts_it_again(
    stack: NativeStack, faults: NativeProcessFaults, knobs: KnobInjector
) -> None:
    (process,) = [p for p in stack.processes if p.name == "slow API"]
    old_pid = process.pid
    knobs.apply(parse_action("slow_api.capacity=3"))
    faults.kill("slow_api")
    assert process.pid != old_pid
    assert _get(stack.urls["slow_api"] + "/healthz", 5) == 200
    # a new process starts from its start-up knobs
    assert _admin(stack, "slow_api", "/control")["capacity"] == 20


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _busy_cpu_rate(stack: NativeStack, pid: int) -> float:
    """CPU seconds per second the service spends while 3 clients loop on /cpu."""
    url = stack.urls["service"] + "/cpu"
    stop = threading.Event()

    def client() -> None:
        with httpx2.Client(timeout=5) as http:
            while not stop.is_set():
                http.get(url).raise_for_status()

    threads = [threading.Thread(target=client) for _ in range(3)]
    for thread in threads:
        thread.start()
    try:
        time.sleep(0.3)  # let the clients get going before the window opens
        cpu0, t0 = _cpu_seconds(pid), time.monotonic()
        time.sleep(MEASURE_S)  # the measurement window itself
        rate = (_cpu_seconds(pid) - cpu0) / (time.monotonic() - t0)
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    return rate


def test_throttle_cpu_of_the_service(stack: NativeStack, faults: NativeProcessFaults) -> None:
    (process,) = [p for p in stack.processes if p.name == "demo service"]
    free = _busy_cpu_rate(stack, process.pid)
    faults.throttle_cpu("service", 0.3)
    try:
        throttled = _busy_cpu_rate(stack, process.pid)
    finally:
        faults.throttle_cpu("service", None)
    print(f"service CPU: {free:.2f} s/s free, {throttled:.2f} s/s throttled to 0.3")
    assert throttled < 0.7 * free, f"{throttled:.2f} CPU s/s throttled vs {free:.2f} free"
    assert throttled < 0.45  # 30% of wall time, plus the slack of a signal's delivery
    assert _get(stack.urls["service"] + "/healthz", 5) == 200  # running again, not left stopped


def test_runner_plays_a_schedule_on_the_stack(
    stack: NativeStack, faults: NativeProcessFaults, knobs: KnobInjector
) -> None:
    """Real time, real servers: every event carried out, in order, and nothing left behind."""
    before = (_admin(stack, "slow_api", "/control"), _admin(stack, "service", "/admin/faults"))
    schedule = FaultSchedule.parse(
        "at 0s set slow_api.extra_latency_s=0.25 for 0.8s; at 0s service.db_latency_s=0.01;"
        "at 0.2s service.pause for 0.3s"
    )
    with FaultRunner(schedule, CompositeInjector(knobs, faults)) as runner:
        assert runner.wait(30)
        assert runner.active == [parse_action("service.db_latency_s=0.01")]
    events = [(fault.kind, fault.action, fault.ok, fault.error) for fault in runner.applied]
    assert events == [
        ("apply", "slow_api.extra_latency_s=0.25", True, None),
        ("apply", "service.db_latency_s=0.01", True, None),
        ("apply", "service.pause", True, None),
        ("undo", "service.pause", True, None),
        ("undo", "slow_api.extra_latency_s=0.25", True, None),
        ("undo", "service.db_latency_s=0.01", True, None),  # by stop()
    ]
    scheduled = [0.0, 0.0, 0.2, 0.5, 0.8]
    assert all(
        due <= fault.t_s < due + 5 for due, fault in zip(scheduled, runner.applied, strict=False)
    )
    after = (_admin(stack, "slow_api", "/control"), _admin(stack, "service", "/admin/faults"))
    assert after == before


def test_a_pause_holds_while_the_part_is_throttled(
    stack: NativeStack, faults: NativeProcessFaults
) -> None:
    """The throttle's duty cycle must not continue a part that is paused on purpose."""
    health = stack.urls["service"] + "/healthz"
    faults.throttle_cpu("service", 0.5)
    try:
        faults.pause("service")
        try:
            assert _get(health, 1.0) is None  # ten duty periods: no SIGCONT let it answer
        finally:
            faults.resume("service")
        assert _get(health, 5) == 200  # resumed, and still throttled, it answers
    finally:
        faults.throttle_cpu("service", None)
    assert _get(health, 5) == 200
