"""A run's load generator as a Prometheus ``file_sd`` target, for as long as it runs.

``brink up``'s Prometheus scrapes every ``*.json`` file of its targets folder
(:func:`loadtests.native.prometheus.run_targets_job`). A ramp or scenario attached to that stack
writes one file per generator process, ``[{"targets": ["127.0.0.1:PORT"], "labels": {...}}]``,
and removes it when the generator stops. The file is written beside its final name and renamed,
so Prometheus never reads half of one.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path


def target_file(targets_dir: Path, address: str) -> Path:
    """The file for the generator listening on ``address`` (``host:port``)."""
    return targets_dir / f"generator-{os.getpid()}-{address.rpartition(':')[2]}.json"


def target_groups(address: str, labels: Mapping[str, str]) -> list[dict[str, object]]:
    """The ``file_sd`` content: one group, one target, the run's labels."""
    return [{"targets": [address], "labels": dict(labels)}]


@contextmanager
def scraped_while_running(
    targets_dir: Path, address: str, labels: Mapping[str, str]
) -> Iterator[Path]:
    """List ``address`` for Prometheus inside the block; unlisted after, whatever happens."""
    path = target_file(targets_dir, address)
    partial = path.with_suffix(".partial")  # not *.json: Prometheus ignores it
    partial.write_text(json.dumps(target_groups(address, labels)) + "\n")
    partial.replace(path)
    try:
        yield path
    finally:
        path.unlink(missing_ok=True)
