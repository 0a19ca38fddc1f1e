"""A ramp derived from a probe: start the stack, probe it, build the ramp, ``run_job`` it.

For when no formula gives the saturation in advance (the default mix, or a configuration the
service's CPU limits): the capacity probe's prediction sets the ramp's rates. ``run_job`` then
ramps the running stack (probing it again for its own report); the wall time counts it all.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path

from benchmarks.ramps import RampRow, quiet, timed_ramp
from loadtests.capacity import predict
from loadtests.mix import Mix
from loadtests.native.process import free_port
from loadtests.native.stack import NativeStack, StackConfig
from loadtests.probe import ProbeResult, probe
from loadtests.ramp import RampJob
from loadtests.runner import RampConfig

Say = Callable[[str], None]


def probe_then_ramp(
    label: str,
    settings: Mapping[str, str],
    mix: Mix,
    derive: Callable[[float], RampConfig],
    run_dir: Path,
    say: Say,
    durable_postgres: bool = True,
    alongside: Callable[[str], AbstractContextManager[object]] = lambda service: nullcontext(),
) -> tuple[RampRow, ProbeResult]:
    """Stack with ``settings``; ``derive(predicted saturation)`` gives the ramp; stack stopped.

    ``alongside(service URL)`` is entered around the ramp (not the probe): extra work to
    measure the knee with, such as a live view scraping the service.
    """
    started = time.monotonic()
    stack = NativeStack(
        StackConfig(
            service_port=free_port(),
            slow_api_port=free_port(),
            pg_port=free_port(),
            extra_env=dict(settings),
            run_dir=run_dir / "stack",
            durable_postgres=durable_postgres,
        )
    )
    say(f"{label}: starting the native stack for a probe first")
    with stack:
        service, slow_api = stack.urls["service"], stack.urls["slow_api"]
        result = probe(service, mix, slow_api + "/metrics", progress=quiet(say, label))
        saturation = predict(result.demands, result.capacities).saturation_rps
        config = derive(saturation)
        say(f"{label}: probe predicts {saturation:.0f} req/s; ramp from {config.average_rps:g}")
        job = RampJob(
            config=config,
            run_dir=run_dir / "ramp",
            target=service,
            slow_api=slow_api,
            settings=dict(settings),
        )
        with alongside(service):
            row = timed_ramp(label, job, say, started)
    return row, result
