"""Locust files: users and the load shape only; the plumbing lives in :mod:`loadtests.loadgen`."""
