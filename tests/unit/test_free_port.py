"""Ports for the servers brink starts: never from the range outgoing connections take."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from loadtests.native import process
from loadtests.native.process import SERVER_PORTS, free_port


def test_a_free_port_is_below_the_ephemeral_range_and_never_handed_out_twice() -> None:
    ports = [free_port() for _ in range(50)]
    assert len(set(ports)) == 50
    ephemeral = Path("/proc/sys/net/ipv4/ip_local_port_range")
    low = int(ephemeral.read_text().split()[0]) if ephemeral.exists() else SERVER_PORTS.stop
    assert all(SERVER_PORTS.start <= port < min(low, SERVER_PORTS.stop) for port in ports)


def test_a_port_someone_listens_on_is_not_free(monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        monkeypatch.setattr(process, "SERVER_PORTS", range(port, port + 1))
        monkeypatch.setattr(process, "_LINUX_EPHEMERAL", Path("/nonexistent"))
        assert free_port() != port  # the only candidate is taken: the kernel picks instead
