"""``python -m demo_service``: validate the settings, then serve one uvicorn worker."""

from __future__ import annotations

from demo_service.app import create_app
from demo_service.serve import serve


def main() -> None:
    serve(
        "brink demo service",
        create_app,
        lambda settings: (settings.server.host, settings.server.port),
    )


if __name__ == "__main__":
    main()
