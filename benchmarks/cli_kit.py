"""What the benchmark commands share: brink's argparse types and timestamped progress lines."""

from __future__ import annotations

import sys
import time

from loadtests.arg_types import positive

__all__ = ["Progress", "positive"]


class Progress:
    """Timestamped progress lines on stderr."""

    def __init__(self) -> None:
        self.started = time.monotonic()

    def __call__(self, message: str) -> None:
        print(f"[{time.monotonic() - self.started:6.1f} s] {message}", file=sys.stderr, flush=True)
