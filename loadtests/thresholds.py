"""Pass/fail thresholds as declared data, checked against a :class:`RunSummary` at the end.

A threshold is ``METRIC OP VALUE``, e.g. ``knee_rps>=150`` or ``p95_at_average_ms <= 100``;
OP is one of ``<``, ``<=``, ``>``, ``>=``, ``==`` (``==`` allows a 1e-9 relative tolerance).
METRIC is a field of :class:`~loadtests.summary.RunSummary`. A metric that is None (no knee
found, collapse not reached ...) fails every threshold naming it, and the message says why.

In a TOML file, thresholds are one top-level array of strings in the same syntax, so the
command line's ``--threshold`` and the file read alike and a metric can have two bounds::

    thresholds = ["knee_rps >= 150", "p95_at_average_ms <= 100", "collapse_rps >= 250"]

:func:`exit_code` turns the results into :class:`~loadtests.exit_codes.ExitCode`.
"""

from __future__ import annotations

import math
import operator
import re
import tomllib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from loadtests.exit_codes import ExitCode
from loadtests.summary import METRICS, RunSummary

_OPS: dict[str, Callable[[float, float], bool]] = {
    "<=": operator.le,
    ">=": operator.ge,
    "==": lambda a, b: math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12),
    "<": operator.lt,
    ">": operator.gt,
}
_SHAPE = re.compile(r"\s*([A-Za-z_]\w*)\s*(<=|>=|==|<|>)\s*([^\s<>=]\S*)\s*")

_WHY_NONE = {
    "knee_rps": "no knee: even the lowest-load stage missed the SLO or the goodput target",
    "onset_rps": "latency never climbed past the onset factor",
    "collapse_rps": "goodput never collapsed in this run",
    "predicted_rps": "no capacity model was given",
    "knee_error_ratio": "it needs both a measured knee and a capacity model",
    "p95_at_average_ms": "no latency was recorded at the average rate",
    "p99_at_average_ms": "no latency was recorded at the average rate",
    "error_rate_at_average": "no request completed at the average rate",
}


def _known() -> str:
    return "known metrics: " + ", ".join(METRICS)


@dataclass(frozen=True)
class Threshold:
    """``metric op value``: a bound one summary metric must meet."""

    metric: str
    op: str
    value: float

    def __post_init__(self) -> None:
        if self.metric not in METRICS:
            raise ValueError(f"unknown metric {self.metric!r}; {_known()}")
        if self.op not in _OPS:
            raise ValueError(f"unknown operator {self.op!r}; use one of <, <=, >, >=, ==")
        if not math.isfinite(self.value):
            raise ValueError(f"threshold value for {self.metric} must be finite, got {self.value}")

    @classmethod
    def parse(cls, text: str) -> Threshold:
        """Parse ``METRIC OP VALUE``; ValueError with the known metrics if it is not one."""
        match = _SHAPE.fullmatch(text)
        if match is None:
            raise ValueError(
                f"malformed threshold {text!r}: expected METRIC OP VALUE such as "
                f"'knee_rps>=150' (OP one of <, <=, >, >=, ==); {_known()}"
            )
        metric, op, raw = match.groups()
        if metric not in METRICS:
            raise ValueError(f"unknown metric {metric!r} in threshold {text!r}; {_known()}")
        try:
            value = float(raw)
        except ValueError:
            raise ValueError(f"threshold {text!r}: {raw!r} is not a number") from None
        return cls(metric, op, value)

    def __str__(self) -> str:
        return f"{self.metric} {self.op} {self.value:g}"


def parse_thresholds_toml(text: str) -> list[Threshold]:
    """Thresholds from TOML text holding ``thresholds = ["METRIC OP VALUE", ...]``."""
    try:
        entries = tomllib.loads(text).get("thresholds")
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"thresholds file is not valid TOML: {exc}") from None
    if not isinstance(entries, list):
        raise ValueError(
            'thresholds file needs a top-level array: thresholds = ["knee_rps >= 150", ...]'
        )
    result = []
    for i, entry in enumerate(entries):
        if not isinstance(entry, str):
            raise ValueError(f"thresholds[{i}] must be a string like 'knee_rps >= 150'")
        try:
            result.append(Threshold.parse(entry))
        except ValueError as exc:
            raise ValueError(f"thresholds[{i}]: {exc}") from None
    return result


def load_thresholds(path: Path) -> list[Threshold]:
    """Read :func:`parse_thresholds_toml` from a file."""
    try:
        return parse_thresholds_toml(path.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from None


@dataclass(frozen=True)
class ThresholdResult:
    """One threshold checked: passed or not, the actual value, and a line for people."""

    threshold: Threshold
    passed: bool
    actual: float | None
    message: str


def _check(threshold: Threshold, summary: RunSummary) -> ThresholdResult:
    actual: float | None = getattr(summary, threshold.metric)
    if actual is None:
        why = _WHY_NONE.get(threshold.metric, "the run did not measure it")
        return ThresholdResult(threshold, False, None, f"{threshold}: FAILED, no value ({why})")
    passed = _OPS[threshold.op](actual, threshold.value)
    verdict = "ok" if passed else "FAILED"
    return ThresholdResult(threshold, passed, actual, f"{threshold}: {verdict} (actual {actual:g})")


def evaluate(thresholds: Iterable[Threshold], summary: RunSummary) -> list[ThresholdResult]:
    """Check every threshold against the summary, in the order given."""
    return [_check(t, summary) for t in thresholds]


def exit_code(results: Sequence[ThresholdResult]) -> ExitCode:
    """``OK`` when every threshold held (or there were none), else ``THRESHOLDS_BREACHED``."""
    return ExitCode.OK if all(r.passed for r in results) else ExitCode.THRESHOLDS_BREACHED
