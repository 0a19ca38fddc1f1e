"""``GET /items/{item_id}``: an indexed read, the fast path."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Path
from pydantic import BaseModel

from demo_service.deps import ServicesDep
from demo_service.errors import declared

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
    async with services.db.connection() as connection:
        row = await connection.fetchrow(_SELECT, item_id)
    if row is None:
        raise HTTPException(404, f"item {item_id} does not exist")
    return Item(**dict(row))
