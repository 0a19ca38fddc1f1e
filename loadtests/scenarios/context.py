"""A running stack as a scenario sees it: probe it, run phases on it, flip its knobs.

The runner (:mod:`loadtests.scenarios.runner`) builds one :class:`ScenarioContext` per scenario
around the stack it started, or the running stack it attached to (``--stack``); the scenario
modules only talk to the stack through it. What a scenario returns (phases, verdicts) is in
:mod:`loadtests.scenarios.base`.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx2

from loadtests.capacity import Prediction, predict
from loadtests.mix import Mix, parse_weights
from loadtests.probe import probe
from loadtests.runner import RampConfig, run_ramp
from loadtests.scenarios.base import Phase, ScenarioError, ScenarioOptions
from loadtests.scrape import Scrape, parse
from loadtests.series import Second, Series

if TYPE_CHECKING:
    from loadtests.attach.session import Attached
    from loadtests.faults.injector import CompositeInjector, KnobInjector
    from loadtests.faults.runner import AppliedFault
    from loadtests.faults.spec import FaultSchedule
    from loadtests.native.stack import NativeStack

Say = Callable[[str], None]
Clock = Callable[[], float]
Sleep = Callable[[float], None]

_ADMIN_TIMEOUT_S = 10.0


def read_token(stack: NativeStack) -> str | None:
    """The admin token the stack's processes got: generated, from extra_env or our env."""
    return stack.admin_token


class ScenarioContext:
    """A running stack, seen from a scenario: probe, run phases, flip knobs, report progress.

    ``stack`` may be None when the service runs elsewhere: ``attached`` to a running stack
    (its URLs, token, live knobs and process faults), or given URLs and a token (tests).
    ``run_labels`` (``{"scenario": name}``) label every phase's load generator, with its phase.
    """

    def __init__(
        self,
        run_dir: Path,
        options: ScenarioOptions,
        *,
        stack: NativeStack | None = None,
        attached: Attached | None = None,
        run_labels: Mapping[str, str] | None = None,
        service_url: str | None = None,
        slow_api_url: str | None = None,
        token: str | None = None,
        say: Say = lambda line: None,
        clock: Clock = time.time,
        sleep: Sleep = time.sleep,
        transport: httpx2.BaseTransport | None = None,
    ) -> None:
        self.run_dir = run_dir
        self.options = options
        self.stack = stack
        self.attached = attached
        self.run_labels = dict(run_labels or {})
        urls = stack.urls if stack is not None else attached.stack.urls if attached else {}
        self.service_url = service_url or urls["service"]
        self.slow_api_url = slow_api_url or urls["slow_api"]
        self.pg_exporter_url = urls.get("pg_exporter")
        """brink's Postgres exporter, when the stack runs one."""
        if token is None and stack is not None:
            token = read_token(stack)
        if token is None and attached is not None:
            token = attached.token
        self.token = token
        self._say = say
        self._clock = clock
        self._sleep = sleep
        self._transport = transport
        self._predictions: dict[str, Prediction] = {}

    # --- progress ------------------------------------------------------------------------

    def say(self, line: str) -> None:
        self._say(line)

    # --- load ----------------------------------------------------------------------------

    def ramp_config(self, **overrides: Any) -> RampConfig:
        """A :class:`RampConfig` with the operator's SLO, seed and workers, then ``overrides``."""
        base = RampConfig(
            slo_s=self.options.slo_s, seed=self.options.seed, workers=self.options.workers
        )
        return replace(base, **overrides)

    def flat_config(self, rate: float, step_s: float, **overrides: Any) -> RampConfig:
        """A flat load at ``rate`` req/s (three steps of ``step_s``) that runs on through a
        collapse: in a scenario a collapse is the finding, not a reason to stop."""
        return self.ramp_config(
            profile="average",
            average_rps=rate,
            peak_rps=rate,
            step_s=step_s,
            abort_on_collapse=False,
            **overrides,
        )

    def predict(self, mix: str | None = None) -> Prediction:
        """Probe each route of ``mix`` at low load once and predict saturation (cached)."""
        mix = mix or RampConfig().mix
        if mix not in self._predictions:
            self.say("probing each route at low load (capacity model)")
            result = probe(
                self.service_url,
                Mix(parse_weights(mix)),
                self.slow_api_url + "/metrics",
                progress=self.say,
            )
            prediction = predict(result.demands, result.capacities)
            self.say(
                f"predicted saturation {prediction.saturation_rps:.0f} req/s; "
                f"{prediction.explanation}"
            )
            self._predictions[mix] = prediction
        return self._predictions[mix]

    def phase(
        self,
        name: str,
        config: RampConfig,
        faults: FaultSchedule | None = None,
        labels: Mapping[str, str] | None = None,
    ) -> Phase:
        """Run ``config`` into ``run_dir/name`` while ``faults`` (a FaultSchedule) is applied.

        The schedule's clock starts as Locust is launched, a second or two before the first
        stage: fault times are relative to the phase, not to the first arrival.
        """
        folder = self.run_dir / name
        self.say(f"phase {name}: profile {config.profile}, about "
                 f"{config.expected_duration_s():.0f} s")  # fmt: skip
        started = self._clock()
        config = replace(config, run_labels={**self.run_labels, "phase": name})
        expose = self.attached.expose if self.attached is not None else None
        with self._faults_applied(faults) as applied:
            run = run_ramp(
                config,
                self.service_url,
                folder,
                progress=lambda line: self.say(f"  {line}"),
                expose=expose,
            )
        seconds, timeline = _read_series(folder / "loadgen.json")
        if run.aborted:
            self.say(f"phase {name}: stopped early, {run.aborted}")
        return Phase(
            name=name,
            stages=run.stages,
            seconds=seconds,
            service_scrapes=run.service_scrapes,
            faults=applied,
            started_at=started,
            config=config,
            ended_at=self._clock(),
            aborted=run.aborted,
            timeline=timeline,
            labels=dict(labels or {}),
        )

    def injector(self, knobs: KnobInjector) -> CompositeInjector:
        """``knobs`` plus process faults: on our stack's processes, or the attached stack's."""
        from loadtests.faults.injector import CompositeInjector, ProcessFaults
        from loadtests.faults.native import NativeProcessFaults

        processes: ProcessFaults | None = None
        if self.stack is not None:
            processes = NativeProcessFaults(self.stack)
        elif self.attached is not None:
            processes = self.attached.process_faults
        return CompositeInjector(knobs, processes)

    @contextmanager
    def _faults_applied(self, schedule: FaultSchedule | None) -> Iterator[list[AppliedFault]]:
        """Play ``schedule`` while the body runs; yields the list of what was applied."""
        applied: list[AppliedFault] = []
        if schedule is None:
            yield applied
            return
        # Imported here: the fault package is only needed by scenarios that inject faults.
        from loadtests.faults.injector import KnobInjector
        from loadtests.faults.runner import FaultRunner

        if self.token is None:
            raise ScenarioError("faults need the admin token, and the stack has none")
        with KnobInjector(self.service_url, self.slow_api_url, self.token) as knobs:
            runner = FaultRunner(schedule, self.injector(knobs), log=self.say)
            runner.start()
            try:
                yield applied
            finally:
                runner.stop()
                applied.extend(runner.applied)

    # --- knobs ---------------------------------------------------------------------------

    def _call(self, method: str, url: str, body: Mapping[str, Any] | None) -> Any:
        if self.token is None:
            raise ScenarioError(f"{method} {url}: needs the admin token, and the stack has none")
        headers = {"Authorization": f"Bearer {self.token}"}
        with httpx2.Client(timeout=_ADMIN_TIMEOUT_S, transport=self._transport) as client:
            response = client.request(
                method, url, json=dict(body) if body is not None else None, headers=headers
            )
        if response.status_code >= 400:
            raise ScenarioError(
                f"{method} {url} answered {response.status_code}: {response.text[:300]}"
            )
        return response.json() if response.content else None

    def admin(self, path: str, json: Mapping[str, Any] | None = None, method: str = "PUT") -> Any:
        """Call the service's admin API (``path`` like ``/admin/faults``) with the token."""
        return self._call(method, self.service_url + path, json)

    def control(self, json: Mapping[str, Any] | None = None, method: str = "PUT") -> Any:
        """Call the slow API's ``/control`` with the token."""
        return self._call(method, self.slow_api_url + "/control", json)

    def set_preset(self, name: str) -> None:
        self.say(f"preset: {name}")
        self.admin("/admin/resilience", {"preset": name})

    def set_resilience(self, **knobs: Any) -> None:
        """Override mechanism knobs on top of the preset, e.g. ``shedding={"limit": 40}``."""
        self.admin("/admin/resilience", knobs)

    def set_faults(self, **knobs: Any) -> None:
        self.say("faults: " + ", ".join(f"{k}={v}" for k, v in knobs.items()))
        self.admin("/admin/faults", knobs)

    def set_slow_api(self, **knobs: Any) -> None:
        self.say("slow API: " + ", ".join(f"{k}={v}" for k, v in knobs.items()))
        self.control(knobs)

    def reset(self) -> None:
        """Faults, resilience and the slow API back to how the processes started; on an
        attached stack, back to how the run found them plus what the scenario needs (the
        processes' start-up values are not the lesson's)."""
        if self.attached is not None:
            from loadtests.faults.injector import FaultError

            try:
                self.attached.live.reset()
            except FaultError as exc:
                raise ScenarioError(f"reset: {exc}") from exc
            return
        self.admin("/admin/faults/reset", method="POST")
        self.admin("/admin/resilience/reset", method="POST")
        self._call("POST", self.slow_api_url + "/control/reset", None)

    def drain(self, timeout_s: float = 30.0, poll_s: float = 0.5) -> bool:
        """Wait until the service has nothing in flight and nobody waits for the pool.

        Between phases a fragile service can still be working off a queue of requests whose
        clients left long ago; starting the next phase on top of that would mix the two.
        Returns False when the deadline passed first (the next phase then starts anyway).
        """
        deadline = self._clock() + timeout_s
        with httpx2.Client(timeout=_ADMIN_TIMEOUT_S, transport=self._transport) as client:
            while True:
                scrape = _scrape(client, self.service_url + "/metrics", self._clock())
                if scrape is not None and is_drained(scrape):
                    return True
                if self._clock() >= deadline:
                    self.say(f"service still busy after {timeout_s:.0f} s; going on")
                    return False
                self._sleep(poll_s)


def _scrape(client: httpx2.Client, url: str, at: float) -> Scrape | None:
    """One scrape, or None when the service does not answer (busy, restarting)."""
    try:
        response = client.get(url)
    except httpx2.HTTPError:
        return None
    return parse(response.text, at) if response.status_code == 200 else None


def is_drained(scrape: Scrape) -> bool:
    """Nothing in flight but the scrape itself, and no pool waiters."""
    in_flight = scrape.total("brink_http_requests_in_flight")
    return in_flight <= 0 and scrape.total("brink_db_pool_waiters") <= 0


def _read_series(path: Path) -> tuple[dict[int, Second], list[dict[str, Any]]]:
    if not path.exists():
        return {}, []
    document = json.loads(path.read_text())
    timeline: list[dict[str, Any]] = document.get("timeline", [])
    return Series.seconds_from_dict(document.get("seconds", {})), timeline
