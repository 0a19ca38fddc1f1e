"""``GET /items/{item_id}/shipping-quote``: a short DB read, then a call to the slow external API.

The price read runs under the live ``db_statement`` deadline, as ``GET /items`` does. The pool
connection is released before the external call, so a slow dependency does not hold
a database connection: the pressure it puts on the service is in-flight requests and the
external client's own small pool. The call goes through the external API's bulkhead, breaker,
retry policy and per-attempt deadline (503 + Retry-After when refused, 504 past the deadline).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Query
from pydantic import BaseModel

from demo_service.deps import ServicesDep
from demo_service.problems import declared
from demo_service.routes.items import ItemId

router = APIRouter(tags=["shipping"])


class ShippingQuote(BaseModel):
    item_id: int
    quantity: int
    carrier: str
    shipping_cents: int
    total_cents: int


@router.get(
    "/items/{item_id}/shipping-quote",
    response_model=ShippingQuote,
    responses=declared(404, 502, 503, 504),
)
async def shipping_quote(
    item_id: ItemId,
    services: ServicesDep,
    quantity: Annotated[int, Query(ge=1, le=100)] = 1,
) -> ShippingQuote:
    statement = services.resilience.deadlines.db_statement
    async with services.db.connection() as connection, statement():
        price = await connection.fetchval("SELECT price_cents FROM items WHERE id = $1", item_id)
    if price is None:
        raise HTTPException(404, f"item {item_id} does not exist")
    quote = await services.external.quote(item_id, quantity)
    return ShippingQuote(
        item_id=item_id,
        quantity=quantity,
        carrier=quote.carrier,
        shipping_cents=quote.price_cents,
        total_cents=price * quantity + quote.price_cents,
    )
