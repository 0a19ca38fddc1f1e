"""brink's Grafana dashboards, one module each; `build.py` writes them as JSON."""

from __future__ import annotations

from .kit import Json
from .overview import overview
from .pressure_points import pressure_points
from .resilience import resilience


def dashboards() -> list[Json]:
    return [overview(), pressure_points(), resilience()]


__all__ = ["dashboards"]
