"""Locust files: users and the load shape only; the plumbing lives in :mod:`loadtests.loadgen`."""

from pathlib import Path

BRINK_LOCUSTFILE = Path(__file__).with_name("brink.py")
"""brink's locustfile, for ``locust -f`` (never imported outside a Locust process)."""
