"""docs/faults.md stays true: every knob of the models has its row, and the examples parse."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from demo_service.faults import FaultValues
from demo_service.resilience.presets import ResilienceConfig
from demo_service.slow_api import KnobsUpdate
from loadtests.faults.spec import FaultSchedule, parse_step
from loadtests.faults.table import KnobRow, knob_rows, process_fault_names

DOC = Path(__file__).resolve().parents[2] / "docs" / "faults.md"


def _doc() -> str:
    return DOC.read_text()


def _knob_rows_in_doc() -> dict[str, list[str]]:
    """Table rows whose first cell is a knob (``service.x``), as lists of cells."""
    rows = {}
    for line in _doc().splitlines():
        match = re.match(r"\| `((?:service|slow_api|resilience)\.[a-z_.]+)` \|", line)
        if match:
            rows[match[1]] = [cell.strip() for cell in line.strip().strip("|").split(" | ")]
    return rows


def _model_knobs() -> set[str]:
    """Every knob, read straight from the models (not through the table helper)."""
    knobs = {f"service.{name}" for name in FaultValues.model_fields}
    knobs |= {f"slow_api.{name}" for name in KnobsUpdate.model_fields}
    knobs.add("resilience.preset")
    for group, info in ResilienceConfig.model_fields.items():
        model = info.annotation
        assert isinstance(model, type)
        knobs |= {f"resilience.{group}.{name}" for name in getattr(model, "model_fields", {})}
    return knobs


def test_every_model_knob_has_a_row_and_no_row_is_stale() -> None:
    documented = set(_knob_rows_in_doc())
    missing = sorted(_model_knobs() - documented)
    stale = sorted(documented - _model_knobs())
    hint = "run `python -m loadtests.faults.table` and paste the new rows into docs/faults.md"
    assert not missing, f"knobs missing from docs/faults.md: {missing}; {hint}"
    assert not stale, f"docs/faults.md documents knobs that no longer exist: {stale}"


@pytest.mark.parametrize("row", list(knob_rows()), ids=lambda row: row.knob)
def test_each_row_states_the_models_api_values_and_start(row: KnobRow) -> None:
    cells = _knob_rows_in_doc().get(row.knob)
    assert cells is not None, f"{row.knob} has no row in docs/faults.md"
    assert tuple(cells[:4]) == row.cells(), f"regenerate the row of {row.knob}"
    assert cells[4], f"{row.knob} has no meaning in docs/faults.md"


def test_every_process_fault_is_documented() -> None:
    doc = _doc()
    names = list(process_fault_names())
    assert "postgres.kill_backend" in names  # a fault of one part has that part's row
    for name in names:
        assert f"| `{name}` |" in doc, f"docs/faults.md has no row for {name}"
    for part, compose in (
        ("postgres", "postgres"),
        ("service", "demo-service"),
        ("slow_api", "slow-api"),
    ):
        assert f"`{part}`" in doc
        assert f"`{compose}`" in doc


def test_the_schedule_examples_parse() -> None:
    blocks = re.findall(r"```text\n(.*?)```", _doc(), flags=re.DOTALL)
    examples = [block for block in blocks if block.lstrip().startswith("at ") and "<" not in block]
    assert examples, "no schedule example found in docs/faults.md"
    for block in examples:
        schedule = FaultSchedule.parse(block)
        assert len(schedule.steps) == len(
            [line for line in block.splitlines() if line.split("#")[0].strip()]
        )
    python = re.search(r'FaultSchedule\.parse\(\s*"([^"]+)"\s*\)', _doc())
    assert python is not None
    FaultSchedule.parse(python[1])


def test_the_refusal_quoted_in_the_doc_is_the_real_one() -> None:
    quoted = re.search(
        r"`(at 60s set slow_api\.extra_latency_s=-1)` fails with `(.+?)`\.", _doc(), re.S
    )
    assert quoted is not None
    expected = " ".join(quoted[2].split())
    with pytest.raises(ValueError, match=f"^{re.escape(expected)}$"):
        parse_step(quoted[1])
