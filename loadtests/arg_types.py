"""argparse types shared by brink's commands and the benchmark commands: one check per kind."""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from typing import TypeVar

Number = TypeVar("Number", int, float)


def positive(kind: type[Number]) -> Callable[[str], Number]:
    """argparse type: a finite number of ``kind`` above 0 (``--step-s 0``, ``nan`` refused)."""

    def parse(text: str) -> Number:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
        if not (math.isfinite(value) and value > 0):
            raise argparse.ArgumentTypeError(f"must be a finite number > 0, got {text!r}")
        return value

    parse.__name__ = kind.__name__  # argparse names the type in its error messages
    return parse
