from __future__ import annotations

from aiohttp import web

from webhook_service import views


def setup(app: web.Application) -> None:
    app.router.add_post("/api/razorpay/webhook", views.webhook)
