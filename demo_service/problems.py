"""The error body every 4xx/5xx carries, and the responses routes declare in OpenAPI."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel


class Problem(BaseModel):
    """The JSON body of an error answer: ``{"detail": "<reason>"}``."""

    detail: str


def responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` for the given error codes, all with a :class:`Problem` body."""
    return {code: {"model": Problem} for code in codes}
