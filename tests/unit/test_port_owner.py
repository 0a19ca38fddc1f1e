"""port_owner on synthetic /proc trees: which listener collides, which process holds it."""

from __future__ import annotations

import ipaddress
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from loadtests.native.port_owner import PortOwner, decode_address, describe_port_owner

HEADER = (
    "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt"
    "   uid  timeout inode\n"
)
LISTEN, ESTABLISHED = "0A", "01"
BRINK_UP = ("/work/brink/.venv/bin/python3", "/work/brink/.venv/bin/brink", "up")
DOCKER_PROXY = (
    "/usr/bin/docker-proxy",
    "-proto",
    "tcp",
    "-host-ip",
    "127.0.0.1",
    "-host-port",
    "8000",
    "-container-ip",
    "172.18.0.4",
    "-container-port",
    "8000",
)


def _hex(address: str) -> str:
    """The kernel's spelling: each 32-bit word of the address in host byte order."""
    packed = ipaddress.ip_address(address).packed
    words = [packed[i : i + 4] for i in range(0, len(packed), 4)]
    if sys.byteorder == "little":
        words = [word[::-1] for word in words]
    return b"".join(words).hex().upper()


@dataclass
class FakeProc:
    """A /proc root in a temp dir: net/tcp{,6} rows and processes with comm, cmdline and fds."""

    root: Path

    def listen(
        self, address: str, port: int, inode: int, uid: int = 1000, state: str = LISTEN
    ) -> None:
        table = self.root / "net" / ("tcp6" if ":" in address else "tcp")
        table.parent.mkdir(parents=True, exist_ok=True)
        if not table.exists():
            table.write_text(HEADER)
        rows = len(table.read_text().splitlines()) - 1
        row = (
            f"{rows:4}: {_hex(address)}:{port:04X} {_hex('::' if ':' in address else '0.0.0.0')}"
            f":0000 {state} 00000000:00000000 00:00000000 00000000 {uid:5} 0 {inode} 1"
            " 0000000000000000 100 0 0 10 0\n"
        )
        with table.open("a") as file:
            file.write(row)

    def process(
        self, pid: int, comm: str, cmdline: tuple[str, ...], sockets: tuple[int, ...] | None = ()
    ) -> None:
        """``sockets=None``: an fd dir this user may not read (it is left out)."""
        directory = self.root / str(pid)
        directory.mkdir(parents=True)
        (directory / "comm").write_text(comm + "\n")
        (directory / "cmdline").write_bytes(b"".join(part.encode() + b"\0" for part in cmdline))
        if sockets is None:
            return
        (directory / "fd").mkdir()
        os.symlink("/dev/null", directory / "fd" / "0")
        for fd, inode in enumerate(sockets, start=3):
            os.symlink(f"socket:[{inode}]", directory / "fd" / str(fd))


@pytest.fixture
def proc(tmp_path: Path) -> FakeProc:
    return FakeProc(tmp_path / "proc")


def _owner(proc: FakeProc, port: int, host: str = "127.0.0.1") -> str | None:
    return describe_port_owner(port, host, proc=proc.root)


@pytest.mark.skipif(sys.byteorder != "little", reason="the literals are a little-endian kernel's")
def test_addresses_decode_as_a_little_endian_kernel_writes_them() -> None:
    assert str(decode_address("0100007F")) == "127.0.0.1"
    assert str(decode_address("00000000")) == "0.0.0.0"
    assert str(decode_address("00000000000000000000000001000000")) == "::1"
    mapped = decode_address("0000000000000000FFFF00000100007F")
    assert mapped == ipaddress.ip_address("::ffff:127.0.0.1")
    with pytest.raises(ValueError, match="not an IPv4 or IPv6 address"):
        decode_address("0100")


def test_a_brink_process_is_named_with_its_pid_and_command_line(proc: FakeProc) -> None:
    proc.listen("127.0.0.1", 8000, inode=4242)
    proc.process(100, "bash", ("bash",), sockets=(77,))
    proc.process(812, "python3", BRINK_UP, sockets=(9, 4242))
    assert _owner(proc, 8000) == f"python3 (pid 812: {' '.join(BRINK_UP)})"


def test_docker_proxy_points_at_the_compose_stack(proc: FakeProc) -> None:
    proc.listen("127.0.0.1", 8000, inode=31337, uid=0)
    proc.process(2001, "docker-proxy", DOCKER_PROXY, sockets=(31337,))
    assert _owner(proc, 8000) == (
        "docker-proxy (pid 2001; probably the Compose stack: `docker compose down`)"
    )


def test_a_root_docker_proxy_is_found_by_its_command_line_without_its_fds(proc: FakeProc) -> None:
    proc.listen("127.0.0.1", 8000, inode=31337, uid=0)
    other_port = tuple("8089" if part == "8000" else part for part in DOCKER_PROXY)
    proc.process(2000, "docker-proxy", other_port, sockets=None)
    proc.process(2001, "docker-proxy", DOCKER_PROXY, sockets=None)
    owner = _owner(proc, 8000)
    assert owner is not None
    assert owner.startswith("docker-proxy (pid 2001;")


def test_an_unreadable_holder_is_named_by_its_user(proc: FakeProc) -> None:
    proc.listen("127.0.0.1", 9090, inode=555, uid=0)
    proc.process(300, "prometheus", ("/usr/bin/prometheus",), sockets=None)
    assert _owner(proc, 9090) == "a process of user root (uid 0) that this user cannot inspect"


@pytest.mark.parametrize(
    ("listener", "host", "collides"),
    [
        ("127.0.0.1", "127.0.0.1", True),
        ("0.0.0.0", "127.0.0.1", True),  # the wildcard holds every address
        ("::", "127.0.0.1", True),  # dual-stack by default (bindv6only=0)
        ("::ffff:127.0.0.1", "127.0.0.1", True),
        ("::1", "::1", True),
        ("::1", "127.0.0.1", False),
        ("127.0.0.2", "127.0.0.1", False),
        ("192.168.1.5", "127.0.0.1", False),
        ("127.0.0.1", "localhost", True),
        ("192.168.1.5", "localhost", False),
    ],
)
def test_only_a_listener_a_bind_would_collide_with_counts(
    proc: FakeProc, listener: str, host: str, collides: bool
) -> None:
    proc.listen(listener, 8089, inode=900)
    proc.process(812, "python3", BRINK_UP, sockets=(900,))
    assert (_owner(proc, 8089, host) is not None) is collides


def test_only_listening_sockets_on_that_port_count(proc: FakeProc) -> None:
    proc.listen("127.0.0.1", 8000, inode=901, state=ESTABLISHED)
    proc.listen("127.0.0.1", 8001, inode=902)
    proc.process(812, "python3", BRINK_UP, sockets=(901, 902))
    assert _owner(proc, 8000) is None
    assert _owner(proc, 8001) is not None


def test_no_proc_means_no_answer(tmp_path: Path) -> None:
    assert describe_port_owner(8000, proc=tmp_path / "no-proc") is None


def test_a_long_command_line_is_cut(proc: FakeProc) -> None:
    proc.listen("127.0.0.1", 54329, inode=700)
    argv = ("/usr/lib/postgresql/15/bin/postgres", "-D", "/tmp/" + "x" * 200)
    proc.process(640, "postgres", argv, sockets=(700,))
    owner = _owner(proc, 54329)
    assert owner is not None
    assert owner.startswith("postgres (pid 640: /usr/lib/postgresql/15/bin/postgres -D /tmp/xx")
    assert owner.endswith("…)")
    assert len(owner) < 130


def test_describe_without_a_command_line() -> None:
    assert PortOwner(uid=0, pid=2, name="kthreadd").describe() == "kthreadd (pid 2)"
