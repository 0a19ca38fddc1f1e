"""What the routes need, built by the lifespan and handed to handlers through dependencies."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request

from demo_service.db import Database
from demo_service.external import ExternalApi
from demo_service.faults import Faults
from demo_service.metrics import ServiceMetrics
from demo_service.resilience.runtime import Resilience
from demo_service.settings import Settings


@dataclass(frozen=True)
class Services:
    settings: Settings
    metrics: ServiceMetrics
    db: Database
    external: ExternalApi
    resilience: Resilience
    faults: Faults


async def _services(request: Request) -> Services:  # async: a sync one would run in a thread
    services: Services = request.app.state.services
    return services


ServicesDep = Annotated[Services, Depends(_services)]
