"""``POST /orders``: a transaction with a row lock on the item, idempotent by client key."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Header, Response
from pydantic import BaseModel, ConfigDict, Field

from demo_service.deps import ServicesDep
from demo_service.orders import OrderRequest, place_order
from demo_service.problems import responses

router = APIRouter(tags=["orders"])


class OrderIn(BaseModel):
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
        **responses(404, 409, 503),
    },
)
async def create_order(
    body: OrderIn,
    idempotency_key: Annotated[UUID, Header(alias="Idempotency-Key")],
    services: ServicesDep,
    response: Response,
) -> OrderOut:
    request = OrderRequest(body.item_id, body.quantity, idempotency_key)
    async with services.db.connection() as connection:
        order, created = await place_order(
            connection, request, services.settings.db.extra_latency_s
        )
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
