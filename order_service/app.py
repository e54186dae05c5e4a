"""order_service: create-order, payment-status, its outbox relay and the reconciler."""

from __future__ import annotations

from order_service import routes
from order_service.reconciler import run_reconciler
from shared.service import background, new_app, razorpay_ctx, run_outbox_relay
from shared.settings import Settings


def create_app(settings: Settings, *, relay: bool = True, reconciler: bool = True):
    app = new_app(settings)
    app.cleanup_ctx.append(razorpay_ctx)
    if relay:
        app.cleanup_ctx.append(background("outbox-relay", run_outbox_relay))
    if reconciler:
        app.cleanup_ctx.append(background("reconciler", run_reconciler))
    routes.setup(app)
    return app
