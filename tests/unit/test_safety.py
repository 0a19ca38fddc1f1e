"""Targets must be loopback unless the user explicitly opts in."""

from __future__ import annotations

import pytest

from loadtests.safety import UnsafeTarget, loopback_only


@pytest.mark.parametrize(
    "url",
    ["http://127.0.0.1:8000", "http://localhost:8000/", "http://[::1]:8000", "http://127.9.9.9"],
)
def test_loopback_targets_pass(url: str) -> None:
    assert loopback_only(url) == url.rstrip("/")


@pytest.mark.parametrize(
    "url", ["http://10.0.0.5:8000", "http://192.168.1.1", "http://8.8.8.8", "http://[2001:db8::1]"]
)
def test_other_addresses_are_refused(url: str) -> None:
    with pytest.raises(UnsafeTarget, match="--allow-remote"):
        loopback_only(url)


def test_remote_needs_an_explicit_opt_in() -> None:
    assert loopback_only("http://10.0.0.5:8000", allow_remote=True) == "http://10.0.0.5:8000"


@pytest.mark.parametrize("url", ["ftp://127.0.0.1", "127.0.0.1:8000", "http://", "not a url"])
def test_malformed_targets_are_refused(url: str) -> None:
    with pytest.raises(UnsafeTarget):
        loopback_only(url)
