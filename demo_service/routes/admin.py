"""``/admin``: switch resilience mechanisms and fault knobs live (bearer token, else 401).

Mounted only when ``BRINK_ADMIN_TOKEN`` is set; exempt from shedding, so it works in overload.

* ``GET /admin/resilience``: the preset, the overrides on top of it and the config in force.
* ``PUT /admin/resilience``: ``{"preset": "resilient"}`` switches preset (earlier overrides
  dropped); any group of knobs (``{"shedding": {"limit": 40}}``) adds to the overrides. A bad
  value, or a combination that does not hold together, is 422 with the reason; nothing changes.
* ``POST /admin/resilience/reset``: back to the start-up preset and overrides.
* ``GET/PUT /admin/faults``, ``POST /admin/faults/reset``: the fault knobs (``faults.py``).
"""

from __future__ import annotations

from fastapi import APIRouter, Depends
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, SecretStr, ValidationError

from demo_service.auth import UNAUTHORIZED_RESPONSES, require_bearer
from demo_service.deps import ServicesDep
from demo_service.faults import FaultsUpdate, FaultValues
from demo_service.problems import BODY_ERRORS, declared
from demo_service.resilience.presets import (
    Overrides,
    PresetName,
    ResilienceConfig,
    ResilienceOverrides,
)
from demo_service.resilience.runtime import Resilience


class ResilienceState(BaseModel):
    """The preset, the knobs overridden on top of it, and the config in force."""

    preset: PresetName
    overrides: Overrides
    effective: ResilienceConfig

    @classmethod
    def of(cls, resilience: Resilience) -> ResilienceState:
        return cls(
            preset=resilience.preset, overrides=resilience.overrides, effective=resilience.config
        )


class ResilienceUpdate(ResilienceOverrides):
    """A preset to switch to (optional) and any knobs to override, group by group."""

    preset: PresetName | None = None


def _refused(exc: ValidationError) -> RequestValidationError:
    """The merged config's problems as a 422, located in the request body."""
    return RequestValidationError(
        [{**error, "loc": ("body", *error["loc"])} for error in exc.errors()]
    )


_RESIZE = {
    409: "Postgres refused the connections a new pool size or floor asks for: nothing changed.",
    503: "Postgres could not be reached to open the new pool: nothing changed.",
}


def admin_router(token: SecretStr) -> APIRouter:
    """The admin routes, behind ``Authorization: Bearer <token>``."""
    router = APIRouter(
        prefix="/admin",
        tags=["admin"],
        dependencies=[Depends(require_bearer(token))],
        responses=UNAUTHORIZED_RESPONSES,
    )

    @router.get("/resilience")
    async def get_resilience(services: ServicesDep) -> ResilienceState:
        """The resilience config in force."""
        return ResilienceState.of(services.resilience)

    @router.put("/resilience", responses=declared(*BODY_ERRORS))
    async def put_resilience(update: ResilienceUpdate, services: ServicesDep) -> ResilienceState:
        """Switch the preset and/or any mechanism's knobs, live."""
        try:
            services.resilience.update(update.preset, update.overrides())
        except ValidationError as exc:
            raise _refused(exc) from None
        return ResilienceState.of(services.resilience)

    @router.post("/resilience/reset")
    async def reset_resilience(services: ServicesDep) -> ResilienceState:
        """Back to the preset and overrides the process started with."""
        services.resilience.reset()
        return ResilienceState.of(services.resilience)

    @router.get("/faults")
    async def get_faults(services: ServicesDep) -> FaultValues:
        """The fault knobs in force."""
        return services.faults.values

    @router.put("/faults", responses=declared(*BODY_ERRORS, 409, 503, descriptions=_RESIZE))
    async def put_faults(update: FaultsUpdate, services: ServicesDep) -> FaultValues:
        """Change any subset of the knobs; new pool sizes swap in a new pool or client first."""
        return await services.faults.apply(update.changes(), services.db, services.external)

    @router.post("/faults/reset", responses=declared(409, 503, descriptions=_RESIZE))
    async def reset_faults(services: ServicesDep) -> FaultValues:
        """Every knob back to its start-up value."""
        return await services.faults.reset(services.db, services.external)

    return router
