from __future__ import annotations

from aiohttp import web

from verification_service import views


def setup(app: web.Application) -> None:
    app.router.add_post("/api/razorpay/verify-payment", views.verify_payment)
    app.router.add_post("/api/razorpay/callback", views.checkout_callback)
