"""Every scenario by name, imported only when run: listing them stays cheap (no matplotlib)."""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from types import MappingProxyType
from typing import cast

from loadtests.scenarios.base import Scenario

SCENARIOS: Mapping[str, str] = MappingProxyType(
    {
        "average-vs-peak": "loadtests.scenarios.average_vs_peak",
        "tipping-point": "loadtests.scenarios.tipping_point",
        "retry-storm": "loadtests.scenarios.retry_storm",
        "hidden-pressure-point": "loadtests.scenarios.hidden_pressure",
        "fragile-vs-resilient": "loadtests.scenarios.fragile_vs_resilient",
        "metastable": "loadtests.scenarios.metastable",
    }
)
"""Scenario name → the module that defines its ``SCENARIO``."""

SUMMARIES: Mapping[str, str] = MappingProxyType(
    {
        "average-vs-peak": "flat at the average load, then at the peak: healthy, then tipped",
        "tipping-point": "slow ramp through the knee: in-flight and pool waiters outgrow the load",
        "retry-storm": "slow dependency + naive retries: retry amplification and DB spill-over",
        "hidden-pressure-point": "hot-row lock contention: the row-lock wait is the bottleneck",
        "fragile-vs-resilient": "the same overload against both presets, side by side",
        "metastable": "near capacity, a short trigger, trigger gone: recovered or stuck?",
    }
)
"""One line per scenario for ``--help`` and ``--list``, without importing the modules."""


def load(name: str) -> Scenario:
    """The scenario called ``name``; ``KeyError`` lists the known names."""
    module_path = SCENARIOS.get(name)
    if module_path is None:
        raise KeyError(f"unknown scenario {name!r}; known: {', '.join(SCENARIOS)}")
    module = importlib.import_module(module_path)
    return cast(Scenario, module.SCENARIO)
