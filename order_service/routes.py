from __future__ import annotations

from aiohttp import web

from order_service import views


def setup(app: web.Application) -> None:
    app.router.add_post("/api/razorpay/create-order", views.create_order)
    app.router.add_get("/api/razorpay/payment-status/{booking_id}", views.payment_status)
