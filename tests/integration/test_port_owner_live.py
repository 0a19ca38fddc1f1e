"""port_owner against this machine's real /proc: a socket this test opens is found, and its pid."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from loadtests.native.port_owner import find_port_owner

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        not Path("/proc/net/tcp").exists(), reason="no /proc/net/tcp: port_owner reads Linux's"
    ),
]


def test_a_socket_this_process_listens_on_is_found() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        owner = find_port_owner(port)
        assert owner is not None
        assert owner.pid == os.getpid()
        assert owner.uid == os.getuid()
        assert owner.name == Path("/proc/self/comm").read_text().strip()
        assert f"(pid {os.getpid()}: " in owner.describe()
    assert find_port_owner(port) is None, "closed: nobody holds it any more"


def test_a_bound_socket_that_does_not_listen_is_not_an_owner() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as bound:
        bound.bind(("127.0.0.1", 0))
        assert find_port_owner(bound.getsockname()[1]) is None
