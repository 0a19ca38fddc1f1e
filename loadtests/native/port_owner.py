"""Who holds a TCP port: the listening socket in Linux's ``/proc``, and the process behind it.

``/proc/net/tcp`` and ``/proc/net/tcp6`` list every socket with its local address, state, owner
uid and inode; each process's ``/proc/<pid>/fd/*`` links to ``socket:[<inode>]`` for the sockets
it holds. Other users' fd links need root, but their ``cmdline`` does not: Docker's port
forwarder (``docker-proxy``, a root process) is then still found by its ``-host-port`` argument.
Without ``/proc`` (macOS) or a listener to find, the answer is ``None``: the caller says only
that the port is taken. Pass another ``proc`` root to read synthetic files (the unit tests do).
"""

from __future__ import annotations

import contextlib
import ipaddress
import itertools
import os
import pwd
import sys
from dataclasses import dataclass
from pathlib import Path

PROC = Path("/proc")
LISTEN = "0A"
"""``st`` of a listening socket in /proc/net/tcp (TCP_LISTEN)."""
DOCKER_FORWARDERS = frozenset({"docker-proxy", "rootlesskit", "rootlessport"})
"""Processes that publish a container's port on the host (rootful and rootless Docker)."""
_CMDLINE_CHARS = 100

Address = ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclass(frozen=True)
class PortOwner:
    """The holder of a listening socket; ``pid`` is ``None`` when its fds were not readable."""

    uid: int
    pid: int | None = None
    name: str = ""
    """``/proc/<pid>/comm``: the executable's name, at most 15 characters."""
    cmdline: tuple[str, ...] = ()

    def describe(self) -> str:
        """One phrase for an error message, e.g. ``python3 (pid 812: .venv/bin/brink up)``."""
        if self.pid is None:
            return f"a process of user {_user(self.uid)} that this user cannot inspect"
        if self.name in DOCKER_FORWARDERS:
            hint = "probably the Compose stack: `docker compose down`"
            return f"{self.name} (pid {self.pid}; {hint})"
        command = " ".join(self.cmdline)
        if not command:
            return f"{self.name} (pid {self.pid})"
        if len(command) > _CMDLINE_CHARS:
            command = command[: _CMDLINE_CHARS - 1] + "…"
        return f"{self.name} (pid {self.pid}: {command})"


def describe_port_owner(port: int, host: str = "127.0.0.1", *, proc: Path = PROC) -> str | None:
    """What holds TCP ``port`` against a bind on ``host``, in words; ``None`` if it cannot tell."""
    owner = find_port_owner(port, host, proc=proc)
    return owner.describe() if owner is not None else None


def find_port_owner(port: int, host: str = "127.0.0.1", *, proc: Path = PROC) -> PortOwner | None:
    """The process listening on ``port`` where a bind on ``host`` would collide with it.

    That is a listener on ``host`` itself or on a wildcard address (``0.0.0.0``, ``::``).
    """
    sockets = [s for s in _listeners(proc) if s.port == port and _collides(s.address, host)]
    if not sockets:
        return None
    links = {f"socket:[{s.inode}]" for s in sockets}
    uid = sockets[0].uid
    pid = next((pid for pid in _pids(proc) if _holds_any(proc / str(pid), links)), None)
    if pid is None:
        pid = _docker_forwarder(proc, port)
    if pid is None:
        return PortOwner(uid=uid)
    process = proc / str(pid)
    return PortOwner(uid=uid, pid=pid, name=_read(process / "comm"), cmdline=_cmdline(process))


@dataclass(frozen=True)
class _Socket:
    address: Address
    port: int
    uid: int
    inode: str


def _listeners(proc: Path) -> list[_Socket]:
    found: list[_Socket] = []
    for table in ("tcp", "tcp6"):
        try:
            text = (proc / "net" / table).read_text()
        except OSError:
            continue
        found += _parse_tcp_table(text)
    return found


def _parse_tcp_table(text: str) -> list[_Socket]:
    """The listening sockets of one ``/proc/net/tcp`` or ``tcp6`` file (header line skipped)."""
    found: list[_Socket] = []
    for line in text.splitlines()[1:]:
        fields = line.split()
        if len(fields) < 10 or fields[3] != LISTEN or fields[9] == "0":
            continue
        address, _, port = fields[1].partition(":")
        with contextlib.suppress(ValueError):
            found.append(_Socket(decode_address(address), int(port, 16), int(fields[7]), fields[9]))
    return found


def decode_address(hex_address: str) -> Address:
    """``0100007F`` -> 127.0.0.1: the kernel prints each 32-bit word in host byte order."""
    raw = bytes.fromhex(hex_address)
    if len(raw) not in (4, 16):
        raise ValueError(f"not an IPv4 or IPv6 address: {hex_address!r}")
    words = [raw[i : i + 4] for i in range(0, len(raw), 4)]
    if sys.byteorder == "little":
        words = [word[::-1] for word in words]
    return ipaddress.ip_address(b"".join(words))


def _collides(address: Address, host: str) -> bool:
    if address.is_unspecified:
        return True
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    try:
        return address == ipaddress.ip_address(host)
    except ValueError:  # a host name such as "localhost"
        return address.is_loopback


def _pids(proc: Path) -> list[int]:
    try:
        return sorted(int(entry.name) for entry in os.scandir(proc) if entry.name.isdigit())
    except OSError:
        return []


def _holds_any(process: Path, links: set[str]) -> bool:
    """Whether one of the process's fds links to one of ``links`` (``socket:[inode]``)."""
    try:
        with os.scandir(process / "fd") as fds:
            for fd in fds:
                with contextlib.suppress(OSError):  # closed since the listing
                    if os.readlink(fd.path) in links:
                        return True
    except OSError:  # another user's process, or it just exited
        return False
    return False


def _docker_forwarder(proc: Path, port: int) -> int | None:
    """A Docker port forwarder whose command line publishes ``port`` (readable without root)."""
    for pid in _pids(proc):
        if _read(proc / str(pid) / "comm") not in DOCKER_FORWARDERS:
            continue
        argv = _cmdline(proc / str(pid))
        if any(a == "-host-port" and b == str(port) for a, b in itertools.pairwise(argv)):
            return pid
    return None


def _cmdline(process: Path) -> tuple[str, ...]:
    return tuple(part for part in _read(process / "cmdline").split("\0") if part)


def _read(path: Path) -> str:
    try:
        return path.read_text(errors="replace").strip()
    except OSError:
        return ""


def _user(uid: int) -> str:
    try:
        return f"{pwd.getpwuid(uid).pw_name} (uid {uid})"
    except KeyError:
        return f"uid {uid}"
