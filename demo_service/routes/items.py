"""``GET /items/{item_id}``: an indexed read, the fast path.

The read runs under the live ``db_statement`` deadline like the order transaction's statements
(off in ``fragile``): a read stuck behind a lock or a slow database answers 503 with
``Retry-After`` instead of holding its pool connection. It is a client-side deadline
(``asyncio.timeout``; asyncpg then asks Postgres to cancel the statement), so the fast path
costs no extra round trip to set a server-side ``statement_timeout``.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Path
from pydantic import BaseModel

from demo_service.deps import ServicesDep
from demo_service.problems import declared

router = APIRouter(tags=["items"])

ItemId = Annotated[int, Path(ge=1, le=2_147_483_647, description="Item id (positive int32).")]


class Item(BaseModel):
    id: int
    name: str
    price_cents: int
    stock: int


_SELECT = "SELECT id, name, price_cents, stock FROM items WHERE id = $1"


@router.get("/items/{item_id}", response_model=Item, responses=declared(404, 503))
async def get_item(item_id: ItemId, services: ServicesDep) -> Item:
    statement = services.resilience.deadlines.db_statement
    async with services.db.connection() as connection, statement():
        row = await connection.fetchrow(_SELECT, item_id)
    if row is None:
        raise HTTPException(404, f"item {item_id} does not exist")
    return Item(**dict(row))
