"""The OS side of a private PostgreSQL: where its binaries are, who runs them, its processes."""

from __future__ import annotations

import contextlib
import importlib.util
import os
import pwd
import re
import shutil
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

SYSTEM_ROOT = Path("/usr/lib/postgresql")
SERVER_USER = "postgres"
REQUIRED_TOOLS = ("initdb", "pg_ctl", "postgres", "createdb")


@dataclass(frozen=True)
class PgBinaries:
    """A directory holding ``initdb``, ``pg_ctl``, ``postgres`` and ``createdb``."""

    bin_dir: Path
    source: str
    """``"path"``, ``"system"`` (``/usr/lib/postgresql/<version>/bin``) or ``"pgserver"``."""

    def tool(self, name: str) -> str:
        return str(self.bin_dir / name)


def _complete(bin_dir: Path) -> bool:
    return all(os.access(bin_dir / tool, os.X_OK) for tool in REQUIRED_TOOLS)


def _version_key(path: Path) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", path.parent.name))


def on_path(search_path: str | None = None) -> PgBinaries | None:
    """The binaries ``pg_ctl`` on ``PATH`` belongs to (symlinks followed)."""
    pg_ctl = shutil.which("pg_ctl", path=search_path)
    if pg_ctl is None or shutil.which("initdb", path=search_path) is None:
        return None
    bin_dir = Path(pg_ctl).resolve().parent
    return PgBinaries(bin_dir, "path") if _complete(bin_dir) else None


def system(root: Path = SYSTEM_ROOT) -> PgBinaries | None:
    """The highest version under ``/usr/lib/postgresql/*/bin`` (Debian's layout)."""
    candidates = [d for d in root.glob("*/bin") if _version_key(d) and _complete(d)]
    if not candidates:
        return None
    return PgBinaries(max(candidates, key=_version_key), "system")


def pgserver() -> PgBinaries | None:
    """The PostgreSQL build inside the ``pgserver`` wheel, found without importing it."""
    spec = importlib.util.find_spec("pgserver")
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        bin_dir = Path(location) / "pginstall" / "bin"
        if _complete(bin_dir):
            return PgBinaries(bin_dir, "pgserver")
    return None


def find_binaries(search_path: str | None = None, root: Path = SYSTEM_ROOT) -> PgBinaries | None:
    """``PATH`` first, then the newest system install, then the ``pgserver`` wheel."""
    return on_path(search_path) or system(root) or pgserver()


def server_user() -> pwd.struct_passwd | None:
    """The OS user that runs the server: ``postgres`` when we are root (initdb refuses root).

    The user is created with ``useradd --system`` if it is missing. ``None`` means "run as me".
    """
    if os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam(SERVER_USER)
    except KeyError:
        subprocess.run(
            ["useradd", "--system", "--shell", "/usr/sbin/nologin", SERVER_USER],
            check=True,
            capture_output=True,
        )
        return pwd.getpwnam(SERVER_USER)


def command_prefix(user: pwd.struct_passwd | None) -> list[str]:
    """What goes in front of a server binary to run it as ``user``."""
    return [] if user is None else ["runuser", "-u", user.pw_name, "--"]


def alive(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie waiting for a reaper."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except FileNotFoundError:
        return False
    except OSError:  # no /proc here: fall back to signal 0
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True
    return state != "Z"


def working_in(directory: Path) -> list[int]:
    """Live processes whose working directory is ``directory`` (Linux ``/proc``; else none).

    Every process of a cluster works in its data dir, also backends orphaned by a killed
    postmaster; its process group does not reach them, as they call ``setsid()``.
    """
    target = str(directory)
    found = []
    for cwd in Path("/proc").glob("[0-9]*/cwd"):
        try:
            if os.readlink(cwd) == target and alive(pid := int(cwd.parent.name)):
                found.append(pid)
        except OSError:
            continue
    return found


def signal_each(pids: list[int], signum: int) -> None:
    """Send ``signum`` to every pid that still exists."""
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signum)


def poll(check: Callable[[], bool], timeout_s: float) -> bool:
    """Poll ``check()`` until it is true or ``timeout_s`` passes."""
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True
