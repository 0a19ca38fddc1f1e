"""``POST /orders``: a transaction with a row lock on the item, idempotent by client key.

Transient DB errors retry the whole transaction under the live retry policy: safe, because a
retry after an unknown commit finds the order by its key and answers it as a replay.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Header, Response
from pydantic import BaseModel, ConfigDict, Field

from demo_service.deps import ServicesDep
from demo_service.orders import OrderRequest, submit_order
from demo_service.problems import BODY_ERRORS, declared
from demo_service.validation import NumbersAreNotBooleans

router = APIRouter(tags=["orders"])


class OrderIn(NumbersAreNotBooleans):
    model_config = ConfigDict(extra="forbid")

    item_id: int = Field(ge=1, le=2_147_483_647)
    quantity: int = Field(1, ge=1, le=100)


class OrderOut(BaseModel):
    id: int
    item_id: int
    quantity: int
    idempotency_key: UUID
    created_at: datetime


@router.post(
    "/orders",
    status_code=201,
    response_model=OrderOut,
    responses={
        200: {"model": OrderOut, "description": "A repeat of an earlier order's key: no new write"},
        **declared(
            *BODY_ERRORS,
            404,
            409,
            503,
            descriptions={
                503: "Shed, pool exhausted, a deadline passed or the database is unavailable: "
                "nothing was written. Except `database unavailable: CommitInDoubt`: the "
                "connection broke during COMMIT, so the order may exist; repeat the same "
                "Idempotency-Key to learn its fate"
            },
        ),
    },
)
async def create_order(
    body: OrderIn,
    idempotency_key: Annotated[UUID, Header(alias="Idempotency-Key")],
    services: ServicesDep,
    response: Response,
) -> OrderOut:
    request = OrderRequest(body.item_id, body.quantity, idempotency_key)
    holds = services.faults.values.holds()
    order, created = await submit_order(services.db, services.resilience, request, holds)
    if not created:
        response.status_code = 200
        response.headers["Idempotent-Replayed"] = "true"
    return OrderOut(
        id=order.id,
        item_id=order.item_id,
        quantity=order.quantity,
        idempotency_key=order.idempotency_key,
        created_at=order.created_at,
    )
