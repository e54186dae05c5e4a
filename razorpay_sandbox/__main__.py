"""`python -m razorpay_sandbox`: serve the sandbox on settings.bind_host:settings.sandbox_port."""

from __future__ import annotations

from aiohttp import web

from razorpay_sandbox.app import create_app
from shared.logging import setup_logging
from shared.settings import load_settings


def main() -> None:
    settings = load_settings()
    setup_logging("razorpay_sandbox", settings.log_level, settings.secrets)
    web.run_app(
        create_app(settings),
        host=settings.bind_host,
        port=settings.sandbox_port,
        print=None,
    )


if __name__ == "__main__":
    main()
