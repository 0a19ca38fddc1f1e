"""Request and config models that take a number only as a number.

Pydantic's lax mode reads ``true`` as 1 for an ``int`` or ``float`` field, so ``{"item_id":
true}`` would order item 1 and ``{"capacity": true}`` set a capacity of 1: a request that breaks
the declared schema accepted as something else (schemathesis flags it). Strict mode would also
refuse the strings that ``BRINK_*`` environment variables are, so only booleans are refused
here, before validation, and the rest of lax mode stays.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ValidationInfo, field_validator

_NUMBERS = (int, float)


class NumbersAreNotBooleans(BaseModel):
    """Base for models whose numeric fields must refuse ``true``/``false``."""

    @field_validator("*", mode="before")
    @classmethod
    def _refuse_booleans(cls, value: Any, info: ValidationInfo) -> Any:
        field = cls.model_fields.get(info.field_name or "")
        if isinstance(value, bool) and field is not None and field.annotation in _NUMBERS:
            raise ValueError("must be a number, not a boolean")
        return value
