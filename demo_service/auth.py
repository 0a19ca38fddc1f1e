"""Bearer-token protection for control and admin endpoints, as a FastAPI dependency.

    router = APIRouter(dependencies=[Depends(require_bearer(settings.admin_token))],
                       responses=UNAUTHORIZED_RESPONSES)

The token stays a :class:`~pydantic.SecretStr` and is only unwrapped to compare it in constant
time; it never reaches a log line, a response body or a ``repr``.
"""

# No ``from __future__ import annotations``: FastAPI must resolve the dependency's annotation,
# which refers to a local of require_bearer.
import secrets
from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from fastapi import Depends, HTTPException, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import SecretStr

from demo_service.problems import Problem

UNAUTHORIZED_RESPONSES: dict[int | str, dict[str, Any]] = {
    status.HTTP_401_UNAUTHORIZED: {
        "model": Problem,
        "description": "The bearer token is missing or wrong.",
    },
}
"""OpenAPI entry for the 401 that :func:`require_bearer` raises; pass it as ``responses=``."""


def _unauthorized(reason: str) -> HTTPException:
    return HTTPException(
        status.HTTP_401_UNAUTHORIZED, detail=reason, headers={"WWW-Authenticate": "Bearer"}
    )


def require_bearer(
    token: SecretStr, *, scheme_name: str = "BearerToken"
) -> Callable[..., Awaitable[None]]:
    """A dependency that admits only requests with ``Authorization: Bearer <token>``.

    Anything else gets a 401 with ``WWW-Authenticate: Bearer`` and a reason. The scheme appears
    in the OpenAPI spec as ``scheme_name``.
    """
    if not token.get_secret_value():
        raise ValueError("the bearer token must not be empty")
    bearer = HTTPBearer(scheme_name=scheme_name, auto_error=False)

    async def check_bearer(
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
    ) -> None:
        if credentials is None or credentials.scheme.lower() != "bearer":
            raise _unauthorized("missing bearer token")
        # Bytes, not str: compare_digest rejects non-ASCII str, and headers are client-chosen.
        # Unwrapped only here, so no plain copy of the token outlives the comparison.
        given = credentials.credentials.encode()
        if not secrets.compare_digest(given, token.get_secret_value().encode()):
            raise _unauthorized("invalid bearer token")

    return check_bearer
