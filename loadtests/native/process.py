"""A child process brink started and must stop: its own process group, a log file, readiness."""

from __future__ import annotations

import contextlib
import os
import random
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import httpx2


class ProcessFailed(RuntimeError):
    """A managed process exited or never became ready; the message carries its log tail."""


SERVER_PORTS = range(20_000, 32_768)
"""Where :func:`free_port` looks: below the ephemeral ports Linux (32768-60999) and macOS
(49152-65535) give outgoing connections. A port the kernel picked for us (``bind(host, 0)``)
comes from that same range, so between our check and the server's own bind a busy load
generator's next connection, or another test process's ``bind(0)``, can take it."""
_LINUX_EPHEMERAL = Path("/proc/sys/net/ipv4/ip_local_port_range")
_handed_out: set[int] = set()


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on now, for a server to bind next: random, below the
    ephemeral range (:data:`SERVER_PORTS`), never one this process handed out before."""
    ports = _server_ports()
    for _ in range(100):
        port = random.choice(ports)
        if port not in _handed_out and port_is_free(port, host):
            _handed_out.add(port)
            return port
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:  # all taken: the kernel's
        sock.bind((host, 0))
        chosen: int = sock.getsockname()[1]
        return chosen


def _server_ports() -> range:
    """:data:`SERVER_PORTS`, cut below this Linux's ephemeral range if it starts lower."""
    try:
        ephemeral_low = int(_LINUX_EPHEMERAL.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return SERVER_PORTS
    top = min(SERVER_PORTS.stop, ephemeral_low)
    return range(SERVER_PORTS.start, top) if top - SERVER_PORTS.start >= 1_000 else SERVER_PORTS


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
        return True


class ManagedProcess:
    """One child process in its own process group, logging to a file.

    ``stop()`` sends SIGTERM to the group, waits, then SIGKILLs what is left, so no grandchild
    survives. ``wait_http_ready()`` polls a URL against a deadline instead of sleeping.
    """

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        log_path: Path,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.name = name
        self.argv = list(argv)
        self.log_path = log_path
        self.env = {**os.environ, **(env or {})}
        self._popen: subprocess.Popen[bytes] | None = None

    @classmethod
    def python_module(
        cls, name: str, module: str, log_path: Path, env: Mapping[str, str] | None = None
    ) -> ManagedProcess:
        """A ``python -m module`` child using this interpreter."""
        return cls(name, [sys.executable, "-m", module], log_path, env)

    @property
    def pid(self) -> int:
        if self._popen is None:
            raise ProcessFailed(f"{self.name} was never started")
        return self._popen.pid

    def start(self) -> ManagedProcess:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self._popen = subprocess.Popen(
                self.argv,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        return self

    def running(self) -> bool:
        return self._popen is not None and self._popen.poll() is None

    def log_tail(self, lines: int = 20) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def wait_http_ready(self, url: str, timeout_s: float = 30.0) -> None:
        """Poll ``url`` until it answers 200; fail fast if the process exits."""
        deadline = time.monotonic() + timeout_s
        last_error = "no answer yet"
        with httpx2.Client(timeout=2.0) as client:
            while time.monotonic() < deadline:
                if not self.running():
                    raise ProcessFailed(
                        f"{self.name} exited with code {self.returncode} before it was ready:\n"
                        f"{self.log_tail()}"
                    )
                try:
                    response = client.get(url)
                except httpx2.TransportError as exc:
                    last_error = repr(exc)
                else:
                    if response.status_code == 200:
                        return
                    last_error = f"HTTP {response.status_code}: {response.text[:200]}"
                time.sleep(0.05)
        raise ProcessFailed(
            f"{self.name} not ready at {url} after {timeout_s:.0f} s ({last_error}):\n"
            f"{self.log_tail()}"
        )

    @property
    def returncode(self) -> int | None:
        return None if self._popen is None else self._popen.poll()

    def signal(self, signum: int) -> None:
        """Send ``signum`` to the whole process group (SIGSTOP/SIGCONT included)."""
        if self.running():
            os.killpg(self.pid, signum)

    def stop(self, timeout_s: float = 10.0) -> int | None:
        """SIGTERM the group, wait up to ``timeout_s``, then SIGKILL it. Returns the exit code."""
        if self._popen is None:
            return None
        if self._popen.poll() is None:
            os.killpg(self.pid, signal.SIGCONT)  # a stopped process cannot handle SIGTERM
            os.killpg(self.pid, signal.SIGTERM)
            try:
                self._popen.wait(timeout_s)
            except subprocess.TimeoutExpired:
                os.killpg(self.pid, signal.SIGKILL)
                self._popen.wait()
        with contextlib.suppress(ProcessLookupError):  # grandchildren that outlived their parent
            os.killpg(self.pid, signal.SIGKILL)
        return self._popen.returncode
