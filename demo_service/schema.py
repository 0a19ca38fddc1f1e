"""The catalogue and orders schema, and its seed data, created idempotently at start-up."""

from __future__ import annotations

import asyncpg

from demo_service.settings import DatabaseSettings

# Any fixed number: serialises concurrent start-ups of several service processes.
_SCHEMA_LOCK = 0x6272696E6B  # "brink"

SCHEMA = """
CREATE TABLE IF NOT EXISTS items (
    id            integer PRIMARY KEY,
    name          text    NOT NULL,
    price_cents   integer NOT NULL CHECK (price_cents >= 0),
    stock         integer NOT NULL CHECK (stock >= 0),
    initial_stock integer NOT NULL CHECK (initial_stock >= 0)
);
CREATE TABLE IF NOT EXISTS orders (
    id              bigserial   PRIMARY KEY,
    idempotency_key uuid        NOT NULL UNIQUE,
    item_id         integer     NOT NULL REFERENCES items (id),
    quantity        integer     NOT NULL CHECK (quantity > 0),
    created_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS orders_item_id ON orders (item_id);
"""

_SEED = """
INSERT INTO items (id, name, price_cents, stock, initial_stock)
SELECT n, 'item-' || n, 100 + (n * 37) % 9900, $2, $2
FROM generate_series(1, $1) AS n
ON CONFLICT (id) DO NOTHING
"""


async def ensure_schema(connection: asyncpg.Connection, settings: DatabaseSettings) -> None:
    """Create the tables and seed ``settings.seed_items`` items; safe to run again."""
    async with connection.transaction():
        await connection.execute("SELECT pg_advisory_xact_lock($1)", _SCHEMA_LOCK)
        await connection.execute(SCHEMA)
        await connection.execute(_SEED, settings.seed_items, settings.initial_stock)


async def schema_ready(connection: asyncpg.Connection) -> bool:
    """True when both tables exist and the catalogue is seeded."""
    tables = await connection.fetchval(
        "SELECT to_regclass('public.items') IS NOT NULL"
        " AND to_regclass('public.orders') IS NOT NULL"
    )
    return bool(tables) and bool(await connection.fetchval("SELECT EXISTS (SELECT 1 FROM items)"))
