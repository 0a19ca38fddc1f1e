"""Every fault knob as table rows, read from the pydantic models the servers validate with.

``docs/faults.md`` holds the table; ``tests/unit/test_faults_doc.py`` checks that every knob of the
models has a row there whose name, API, values and start-up value are the ones these rows give, so
the docs cannot drift from what the APIs accept. The meaning column is prose, written in the doc.
``python -m loadtests.faults.table`` prints the rows, meanings left blank, to paste new knobs in.
The process faults' table is prose too; :func:`process_fault_names` names the row each needs.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Literal, get_args, get_origin

from pydantic import BaseModel
from pydantic.fields import FieldInfo

from demo_service.faults import FaultValues
from demo_service.resilience.presets import PRESETS, PresetName, ResilienceConfig
from demo_service.settings import SlowApiSettings
from demo_service.slow_api import KnobsUpdate
from loadtests.faults.spec import ONE_PART_OPS, PROCESS_OPS

HEADER = ("knob", "API", "values", "start (fragile / resilient / adaptive)", "meaning")


@dataclass(frozen=True)
class KnobRow:
    knob: str
    """As a fault action names it: ``service.db_latency_s``, ``resilience.retry.policy``."""
    api: str
    values: str
    """Type and bounds, as the API validates them."""
    start: str
    """The start-up default; for resilience knobs the fragile / resilient / adaptive values
    when they differ."""

    def cells(self) -> tuple[str, str, str, str]:
        return (f"`{self.knob}`", f"`{self.api}`", self.values, self.start)


def knob_rows() -> Iterator[KnobRow]:
    """Service faults, slow-API knobs, then the resilience preset and every mechanism's knob."""
    for name, info in FaultValues.model_fields.items():
        extra = info.json_schema_extra
        assert isinstance(extra, dict)
        values = f"{_bounds(info)} {extra['unit']}"
        yield KnobRow(f"service.{name}", "/admin/faults", values, _show(info.default))
    for name, info in KnobsUpdate.model_fields.items():
        start = _show(SlowApiSettings.model_fields[name].default)
        yield KnobRow(f"slow_api.{name}", "/control", _values(name, info), start)
    presets = get_args(PresetName)
    yield KnobRow("resilience.preset", "/admin/resilience", _choices(presets), "fragile")
    for group, group_info in ResilienceConfig.model_fields.items():
        model = group_info.annotation
        assert isinstance(model, type)
        assert issubclass(model, BaseModel)
        for name, info in model.model_fields.items():
            per_preset = [_show(getattr(getattr(PRESETS[p], group), name)) for p in presets]
            start = per_preset[0] if len(set(per_preset)) == 1 else " / ".join(per_preset)
            values = _values(name, info)
            yield KnobRow(f"resilience.{group}.{name}", "/admin/resilience", values, start)


def process_fault_names() -> Iterator[str]:
    """The first cell of each process fault's row: ``<part>.pause`` for a fault every part has,
    ``postgres.kill_backend`` for one only Postgres has, ``<part>.cpu=N`` with its value."""
    for operation in PROCESS_OPS:
        name = f"{ONE_PART_OPS.get(operation, '<part>')}.{operation}"
        yield f"{name}=N" if operation == "cpu" else name


def markdown_table(rows: Iterable[KnobRow]) -> str:
    """The rows as a Markdown table with an empty meaning column."""
    lines = [_line(HEADER), _line(("---",) * len(HEADER))]
    lines += [_line((*row.cells(), "")) for row in rows]
    return "\n".join(lines)


def _values(name: str, info: FieldInfo) -> str:
    if get_origin(info.annotation) is Literal:
        return _choices(get_args(info.annotation))
    if info.annotation is bool:
        return _choices(("true", "false"))
    unit = " s" if name.endswith("_s") else ""
    return f"{_bounds(info)}{unit}"


def _bounds(info: FieldInfo) -> str:
    found = {
        name: getattr(item, name)
        for item in info.metadata
        for name in ("gt", "ge", "lt", "le")
        if getattr(item, name, None) is not None
    }
    low = f"> {found['gt']:,}" if "gt" in found else f"{found['ge']:,}"
    high = f"< {found['lt']:,}" if "lt" in found else f"{found['le']:,}"
    return f"{low} to {high}"


def _choices(choices: Iterable[str]) -> str:
    return " / ".join(f"`{choice}`" for choice in choices)


def _show(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def _line(cells: Iterable[str]) -> str:
    return "| " + " | ".join(cells) + " |"


if __name__ == "__main__":
    print(markdown_table(knob_rows()))
