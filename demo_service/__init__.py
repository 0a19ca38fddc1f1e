"""brink's sacrificial backend: a FastAPI + asyncpg service and a slow fake external API."""
