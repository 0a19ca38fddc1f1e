"""brink's Locust file: open-model dispatchers driven by a named load profile.

    locust -f loadtests/locustfiles/brink.py --host http://127.0.0.1:8000 --web-host 127.0.0.1

Each user is a dispatcher: it sends Poisson arrivals at its slice of the profile's rate and
never waits for answers, so a slow backend cannot slow the load down. Pick the profile and
its rates in the web UI's custom parameters or with --load-profile, --average-rps, --peak-rps.
"""

# Locust first: importing it patches the process for gevent before anything opens sockets.
import locust  # noqa: F401  isort: skip

import random
import time
from typing import Any

import gevent
from locust import LoadTestShape, User, events, task
from locust.env import Environment

from loadtests import loadgen
from loadtests.pacing import dispatch


@events.init_command_line_parser.add_listener
def _brink_options(parser: Any) -> None:
    loadgen.add_options(parser)


@events.init.add_listener
def _brink_init(environment: Environment, **_: Any) -> None:
    loadgen.on_init(environment)


class Dispatcher(User):
    """One dispatcher: a slice of the arrival rate, sent by the process's arrival engine."""

    @task
    def send_arrivals(self) -> None:
        engine = loadgen.state().engine
        if engine is None:  # the test has not started in this process yet
            gevent.sleep(0.1)
            return
        arrivals = self.environment.parsed_options.arrivals
        dispatch(engine, random.Random(), time.time, gevent.sleep, arrivals)


class ProfileShape(LoadTestShape):
    """The named profile's stages, then a drain tail, then the end of the run."""

    def tick(self) -> tuple[int, float] | None:
        assert self.runner is not None
        return loadgen.shape_tick(self.runner.environment, self.get_run_time)
