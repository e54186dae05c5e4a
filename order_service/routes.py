from __future__ import annotations

from aiohttp import web

from order_service import admin, dispute_admin, settlements_admin, staff, views
from shared import status_batch


def setup(app: web.Application) -> None:
    app.router.add_post("/api/razorpay/create-order", views.create_order)
    app.router.add_get("/api/razorpay/payment-status/{booking_id}", views.payment_status)
    app.router.add_post(status_batch.PATH, views.payment_statuses)  # the gateway's
    app.router.add_post("/api/razorpay/bookings/{booking_id}/cancel", admin.cancel_booking)
    app.router.add_post("/api/razorpay/refunds", admin.refund)
    app.router.add_post("/api/passes/scan", staff.scan_pass)
    app.router.add_get("/api/razorpay/disputes", dispute_admin.list_disputes)
    app.router.add_post("/api/razorpay/disputes/{dispute_id}/contest", dispute_admin.contest)
    app.router.add_post("/api/razorpay/disputes/{dispute_id}/accept", dispute_admin.accept)
    app.router.add_get("/api/razorpay/settlements", settlements_admin.list_settlements)
    app.router.add_get("/api/razorpay/ledger.csv", settlements_admin.ledger_csv)
