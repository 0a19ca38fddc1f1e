"""A throw-away private PostgreSQL cluster on 127.0.0.1, with crash and stall helpers for tests."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import Literal, Self

from loadtests.native import _binaries
from loadtests.native._binaries import PgBinaries, alive, poll, signal_each, working_in
from loadtests.native.process import port_is_free

ShutdownMode = Literal["smart", "fast", "immediate"]

_CTL_TIMEOUT_S = 30
NON_DURABLE_SETTINGS = {"fsync": "off", "synchronous_commit": "off", "full_page_writes": "off"}
"""What ``durable=False`` sets: commits return before their WAL is flushed."""


class PostgresError(RuntimeError):
    """The private cluster could not be started or controlled; carries the server log tail."""


class PrivatePostgres:
    """A private cluster in a fresh temp dir: superuser and database ``brink``, trust auth.

    Listens only on ``host:port`` (plus a unix socket in its temp dir). Durable by default, with
    the Compose Postgres's guarantees: a COMMIT returns only after its WAL is flushed, so an
    acknowledged write survives a backend or postmaster crash. ``durable=False`` turns
    ``fsync``, ``synchronous_commit`` and ``full_page_writes`` off: faster commits that a crash
    can lose (:data:`NON_DURABLE_SETTINGS`). ``stop()`` leaves nothing.
    """

    def __init__(
        self,
        port: int = 54329,
        host: str = "127.0.0.1",
        durable: bool = True,
        *,
        binaries: PgBinaries | None = None,
    ) -> None:
        self.port = port
        self.host = host
        self.durable = durable
        self._binaries = binaries
        self._prefix: list[str] = []
        self._temp_dir: Path | None = None

    @property
    def dsn(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"postgresql://brink@{host}:{self.port}/brink"

    @property
    def temp_dir(self) -> Path | None:
        """The ``brink-pg-*`` dir holding data, log and socket; ``None`` when stopped."""
        return self._temp_dir

    @property
    def data_dir(self) -> Path:
        return self._require_temp_dir() / "data"

    @property
    def log_path(self) -> Path:
        return self._require_temp_dir() / "postgres.log"

    @property
    def pid(self) -> int | None:
        """The postmaster's pid from ``postmaster.pid``, or ``None`` if there is none."""
        try:
            return int(self.data_dir.joinpath("postmaster.pid").read_text().split()[0])
        except (FileNotFoundError, IndexError, ValueError, PostgresError):
            return None

    def running(self) -> bool:
        pid = self.pid
        return pid is not None and alive(pid)

    def processes(self) -> list[int]:
        """Live processes of this cluster, the postmaster first if it runs."""
        if self._temp_dir is None:
            return []
        pid = self.pid
        others = [other for other in working_in(self.data_dir) if other != pid]
        return [pid, *others] if pid is not None and alive(pid) else others

    def log_tail(self, lines: int = 20) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except (FileNotFoundError, PostgresError):
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def start(self) -> Self:
        """Create, configure and start the cluster, then create database ``brink``."""
        if self._temp_dir is not None:
            return self
        if not port_is_free(self.port, self.host):
            raise PostgresError(
                f"port {self.port} on {self.host} is already in use: choose another Postgres port"
            )
        binaries = self._binaries or _binaries.find_binaries()
        if binaries is None:
            raise PostgresError(
                "no PostgreSQL server binaries found (initdb, pg_ctl): install them "
                "(apt-get install -y postgresql) or the pgserver wheel (pip install pgserver)"
            )
        self._binaries = binaries
        try:
            user = _binaries.server_user()
        except (OSError, subprocess.CalledProcessError) as exc:
            raise PostgresError(f"cannot create the OS user for the server: {exc}") from exc
        self._prefix = _binaries.command_prefix(user)
        self._temp_dir = Path(tempfile.mkdtemp(prefix="brink-pg-")).resolve()
        try:
            if user is not None:
                os.chown(self._temp_dir, user.pw_uid, user.pw_gid)
            self._initdb()
            self._pg_ctl("start")
            socket = ["-h", str(self._temp_dir), "-p", str(self.port)]
            self._run("createdb", *socket, "-U", "brink", "brink")
        except BaseException:
            self.stop()
            raise
        return self

    def _initdb(self) -> None:
        # initdb's own final sync only protects the new cluster against an OS crash in the next
        # seconds; a throw-away cluster skips it (1-2 s). What the server acknowledges later is
        # durable or not by the settings below.
        args = ["-D", str(self.data_dir), "-U", "brink", "-A", "trust", "-E", "UTF8"]
        self._run("initdb", *args, "--locale=C", "--no-instructions", "--no-sync")
        settings = {
            "listen_addresses": f"'{self.host}'",
            "port": str(self.port),
            "unix_socket_directories": f"'{self._temp_dir}'",
            "max_connections": "200",
        }
        if not self.durable:
            settings |= NON_DURABLE_SETTINGS
        with self.data_dir.joinpath("postgresql.conf").open("a") as conf:
            conf.write("\n# brink private cluster\n")
            conf.writelines(f"{key} = {value}\n" for key, value in settings.items())

    def stop(self, keep_log: Path | None = None) -> None:
        """Stop the server (fast, then immediate, then SIGKILL) and delete its temp dir.

        ``keep_log`` copies the server log there first. Safe to call twice.
        """
        if self._temp_dir is None:
            return
        if self.running():
            signal_each(self.processes(), signal.SIGCONT)  # a paused server cannot shut down
            for mode in ("fast", "immediate"):
                try:
                    self._pg_ctl("stop", "-m", mode, timeout_s=10)
                    break
                except PostgresError:
                    continue
        self._reap(grace_s=0 if self.running() else 5)
        if keep_log is not None and self.log_path.exists():
            keep_log.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(self.log_path, keep_log)
        shutil.rmtree(self._temp_dir, ignore_errors=True)
        self._temp_dir = None

    def restart(self, mode: ShutdownMode = "fast") -> None:
        """``pg_ctl restart``: every client connection is dropped, the data stays."""
        self._pg_ctl("restart", "-m", mode)

    def kill(self) -> None:
        """SIGKILL the postmaster, like a crash; its backends notice and exit on their own."""
        pid = self._require_postmaster()
        os.kill(pid, signal.SIGKILL)
        if not poll(lambda: not alive(pid), 10):
            raise PostgresError(f"postmaster {pid} survived SIGKILL")

    def start_again(self) -> None:
        """Start the same data dir after :meth:`kill` (crash recovery runs first)."""
        if self.running():
            raise PostgresError(f"postgres on port {self.port} is still running")
        self._reap(grace_s=5)  # orphaned backends still hold the old shared memory
        # the dead postmaster may linger as a zombie, which makes its lock files look live
        socket_lock = self._require_temp_dir() / f".s.PGSQL.{self.port}.lock"
        for stale in (self.data_dir / "postmaster.pid", socket_lock):
            stale.unlink(missing_ok=True)
        self._pg_ctl("start")

    def kill_backend(self, timeout_s: float = _CTL_TIMEOUT_S) -> float:
        """SIGKILL one backend serving a client of database ``brink``, as the OOM killer would.

        The postmaster survives but cannot know what the dead backend left half-done in shared
        memory: it ends every other backend (each client connection breaks), re-initialises
        shared memory and replays the WAL (crash recovery); committed data stays. Returns the
        seconds from the kill until the server accepts connections again.
        """
        postmaster = self._require_postmaster()
        children = [pid for pid in self.processes() if pid != postmaster]
        victim = self._client_backend(children)
        started = time.monotonic()
        os.kill(victim, signal.SIGKILL)
        # until the postmaster has noticed (every child of before the kill gone) it looks ready
        if not poll(lambda: not any(alive(pid) for pid in children), timeout_s):
            raise PostgresError(
                f"postgres on port {self.port} kept its other backends after backend {victim} "
                f"was killed:\n{self.log_tail()}"
            )
        if not poll(self._accepting, timeout_s):
            raise PostgresError(
                f"postgres on port {self.port} did not accept connections {timeout_s} s after "
                f"backend {victim} was killed:\n{self.log_tail()}"
            )
        return time.monotonic() - started

    def pause(self) -> None:
        """SIGSTOP the postmaster and its backends: connections hang, nothing is refused."""
        # the postmaster first, so that it forks no new backend meanwhile
        os.kill(self._require_postmaster(), signal.SIGSTOP)
        signal_each(self.processes(), signal.SIGSTOP)

    def resume(self) -> None:
        """SIGCONT what :meth:`pause` stopped."""
        self._require_postmaster()
        signal_each(self.processes(), signal.SIGCONT)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _require_temp_dir(self) -> Path:
        if self._temp_dir is None:
            raise PostgresError("postgres is not started")
        return self._temp_dir

    def _require_postmaster(self) -> int:
        pid = self.pid
        if pid is None or not alive(pid):
            raise PostgresError(f"postgres on port {self.port} is not running")
        return pid

    def _client_backend(self, pids: list[int]) -> int:
        """One of ``pids`` serving a client of database ``brink``, by the title Postgres gives
        such a backend (``postgres: <user> <database> <client> <activity>``, as ``ps`` shows it).
        """
        for pid in pids:
            try:
                title = Path(f"/proc/{pid}/cmdline").read_bytes()
            except OSError:
                continue
            if title.startswith(b"postgres: brink brink "):
                return pid
        raise PostgresError(f"postgres on port {self.port} has no client backend to kill")

    def _accepting(self) -> bool:
        """``pg_isready``: True once the server takes connections (not starting or recovering)."""
        assert self._binaries is not None
        where = ["-h", self.host, "-p", str(self.port), "-U", "brink", "-d", "brink"]
        argv = [self._binaries.tool("pg_isready"), "-q", "-t", "2", *where]
        try:
            result = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, timeout=10)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise PostgresError(f"`pg_isready` could not run: {exc}") from exc
        return result.returncode == 0

    def _reap(self, grace_s: float) -> None:
        """Give the cluster's processes ``grace_s`` to exit, then SIGKILL what is left."""
        if poll(lambda: not self.processes(), grace_s):
            return
        signal_each(self.processes(), signal.SIGKILL)
        if not poll(lambda: not self.processes(), 10):
            raise PostgresError(f"postgres processes {self.processes()} survived SIGKILL")

    def _pg_ctl(self, action: str, *args: str, timeout_s: int = _CTL_TIMEOUT_S) -> None:
        # always -l: a postmaster without a log file would hold our output pipes open
        log = ["-l", str(self.log_path)] if action != "stop" else []
        wait = ["-w", "-t", str(timeout_s)]
        self._run("pg_ctl", action, "-D", str(self.data_dir), *wait, *log, *args)

    def _run(self, tool: str, *args: str) -> None:
        assert self._binaries is not None
        argv = [*self._prefix, self._binaries.tool(tool), *args]
        shown = " ".join([tool, *args])
        try:
            result = subprocess.run(
                argv,
                cwd=self._temp_dir,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=_CTL_TIMEOUT_S * 2,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise PostgresError(f"`{shown}` timed out:\n{self.log_tail()}") from exc
        if result.returncode != 0:
            output = (result.stdout + result.stderr).strip()
            raise PostgresError(
                f"`{shown}` failed (exit {result.returncode}): {output}\n"
                f"server log ({self.log_path}):\n{self.log_tail()}"
            )
