"""Start one of brink's apps the same way: validated settings first, then one uvicorn worker."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

import uvicorn

from demo_service.settings import Settings, SettingsError, load_settings


def serve(
    name: str,
    build: Callable[[Settings], Any],
    listener: Callable[[Settings], tuple[str, int]],
    **uvicorn_options: Any,
) -> None:
    """Run ``build(settings)`` on ``listener(settings)``; a bad setting exits 2 with one line."""
    try:
        settings = load_settings()
    except SettingsError as exc:
        print(f"{name}: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    host, port = listener(settings)
    uvicorn.run(
        build(settings),
        host=host,
        port=port,
        access_log=False,
        log_level="warning",
        **uvicorn_options,
    )
