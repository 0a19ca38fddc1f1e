"""A run's load generator as a Prometheus ``file_sd`` target, for as long as it runs.

A stack's Prometheus scrapes every ``*.json`` file of its targets folder
(:func:`loadtests.native.prometheus.run_targets_job`): ``brink up``'s reads a folder of its run
dir, the Compose lab's a folder of this checkout bind-mounted into its container. A ramp or
scenario attached to the stack writes one file per generator process,
``[{"targets": ["HOST:PORT"], "labels": {...}}]``, and removes it when the generator stops.
HOST is 127.0.0.1 for ``brink up``; for the Compose lab it is the name its Prometheus reaches
this machine by (``host.docker.internal``). The file is written beside its final name and
renamed, so Prometheus never reads half of one; it is world-readable, because the Compose
Prometheus runs as another user (``nobody``). Files that generators killed with SIGKILL left
behind are removed when the next run writes its own.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

from loadtests.native._binaries import alive

_FILE = re.compile(r"generator-(\d+)-(\d+)\.json")


def target_file(targets_dir: Path, address: str) -> Path:
    """The file for the generator listening on ``address`` (``host:port``)."""
    return targets_dir / f"generator-{os.getpid()}-{_port(address)}.json"


def target_groups(address: str, labels: Mapping[str, str]) -> list[dict[str, object]]:
    """The ``file_sd`` content: one group, one target, the run's labels."""
    return [{"targets": [address], "labels": dict(labels)}]


@contextmanager
def scraped_while_running(
    targets_dir: Path, address: str, labels: Mapping[str, str], *, host: str | None = None
) -> Iterator[Path]:
    """List the generator on ``address`` for Prometheus inside the block; unlisted after,
    whatever happens. ``host``: the name Prometheus reaches ``address``'s machine by, listed
    instead of its host part (None: as it is)."""
    _remove_dead_generators(targets_dir)
    listed = address if host is None else f"{host}:{_port(address)}"
    path = target_file(targets_dir, address)
    partial = path.with_suffix(".partial")  # not *.json: Prometheus ignores it
    partial.write_text(json.dumps(target_groups(listed, labels)) + "\n")
    partial.chmod(0o644)
    partial.replace(path)
    try:
        yield path
    finally:
        path.unlink(missing_ok=True)


def _port(address: str) -> str:
    return address.rpartition(":")[2]


def _remove_dead_generators(targets_dir: Path) -> None:
    """Remove the files of generators whose process is gone (a run killed with SIGKILL): a
    Prometheus would otherwise try them for good, and alert that it cannot scrape them."""
    for path in targets_dir.glob("generator-*.json"):
        named = _FILE.fullmatch(path.name)
        if named is not None and not alive(int(named.group(1))):
            path.unlink(missing_ok=True)
