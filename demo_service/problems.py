"""The error body every 4xx/5xx carries, and the error answers routes declare in OpenAPI.

Both apps use :func:`declared`, so a route's spec lists every answer it can really give (the
fuzz test checks each answer against it): a body that cannot be parsed (400) or is too large
(413), the domain refusals (404, 409) and the overload answers, which say when to come back
(503 with ``Retry-After``; 504 when a dependency was too slow). 422 (validation) and 401 (the
bearer token, :data:`demo_service.auth.UNAUTHORIZED_RESPONSES`) are declared elsewhere.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel


class Problem(BaseModel):
    """The JSON body of an error answer: ``{"detail": "<reason>"}``."""

    detail: str


_RETRY_AFTER = {
    "Retry-After": {
        "description": "Seconds to wait before trying again.",
        "schema": {"type": "integer"},
    }
}
_DESCRIPTIONS = {
    400: "The body could not be parsed (not UTF-8, or not JSON).",
    404: "The item does not exist.",
    409: "Out of stock, or the Idempotency-Key belongs to another order.",
    413: "The body is larger than the server's limit.",
    502: "The external API failed or answered badly.",
    503: "Overloaded or unavailable, try again later: shed at admission, pool exhausted, a DB"
    " deadline passed, the bulkhead is full, the breaker is open, or the database is down.",
    504: "The external API did not answer in time.",
}

BODY_ERRORS = (400, 413)
"""What any route with a request body can answer before the route runs."""


def declared(
    *codes: int, descriptions: Mapping[int, str] | None = None
) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` for these codes: a :class:`Problem` body, ``Retry-After`` on 503.

    ``descriptions`` replaces the shared wording of a code where a route means something
    narrower by it.
    """
    wording = {**_DESCRIPTIONS, **(descriptions or {})}
    return {
        code: {
            "model": Problem,
            "description": wording[code],
            **({"headers": _RETRY_AFTER} if code == 503 else {}),
        }
        for code in codes
    }
