"""`python -m gateway`: read settings once, log as JSON, serve."""

from __future__ import annotations

from aiohttp import web

from gateway.app import create_app
from shared.logging import setup_logging
from shared.settings import load_settings


def main() -> None:
    settings = load_settings()
    setup_logging("gateway", settings.log_level, settings.secrets)
    web.run_app(
        create_app(settings),
        host=settings.bind_host,
        port=settings.gateway_port,
        access_log=None,  # the access middleware logs one scrubbed JSON line instead
        print=None,
    )


if __name__ == "__main__":
    main()
