"""``GET /cpu``: CPU-bound work on the event loop, a fixed cost per request.

The work runs on the single worker's event loop on purpose: it blocks every other request
while it runs, which is what CPU saturation looks like in a one-worker async service.
"""

from __future__ import annotations

import hashlib
import time

from fastapi import APIRouter
from pydantic import BaseModel

from demo_service.deps import ServicesDep
from demo_service.http_metrics import current_route
from demo_service.problems import declared

router = APIRouter(tags=["cpu"])


class CpuResult(BaseModel):
    iterations: int
    digest: str


@router.get("/cpu", response_model=CpuResult, responses=declared(503))
async def burn_cpu(services: ServicesDep) -> CpuResult:
    iterations = services.settings.cpu.iterations
    started = time.thread_time()
    digest = hashlib.pbkdf2_hmac("sha256", b"brink", b"tipping-point", iterations).hex()
    services.metrics.cpu_work.labels(current_route.get()).inc(time.thread_time() - started)
    return CpuResult(iterations=iterations, digest=digest)
