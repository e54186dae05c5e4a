from __future__ import annotations

from aiohttp import web

from order_service import admin, settlements_admin, views
from shared import status_batch


def setup(app: web.Application) -> None:
    app.router.add_post("/api/razorpay/create-order", views.create_order)
    app.router.add_get("/api/razorpay/payment-status/{booking_id}", views.payment_status)
    app.router.add_post(status_batch.PATH, views.payment_statuses)  # the gateway's
    app.router.add_post("/api/razorpay/bookings/{booking_id}/cancel", admin.cancel_booking)
    app.router.add_post("/api/razorpay/refunds", admin.refund)
    app.router.add_get("/api/razorpay/settlements", settlements_admin.list_settlements)
    app.router.add_get("/api/razorpay/ledger.csv", settlements_admin.ledger_csv)
