"""verification_service: verify-payment, the checkout callback, and its outbox relay."""

from __future__ import annotations

from shared.service import background, new_app, razorpay_ctx, run_outbox_relay
from shared.settings import Settings
from verification_service import routes


def create_app(settings: Settings, *, relay: bool = True):
    app = new_app(settings, "verification_service")
    app.cleanup_ctx.append(razorpay_ctx)
    if relay:
        app.cleanup_ctx.append(background("outbox-relay", run_outbox_relay))
    routes.setup(app)
    return app
