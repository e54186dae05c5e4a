"""The framework's own ceiling: one aiohttp process answering a constant JSON, no database,
no middleware. `make bench` drives it with the same client as payment-status, in the same
run, so status throughput can be stated as a share of what aiohttp itself manages here.

    python -m bench.ceiling PORT
"""

from __future__ import annotations

import sys

from aiohttp import web

BODY = {"status": "paid", "paid": True, "razorpay_payment_id": "pay_ceiling0000001"}


async def constant(_: web.Request) -> web.Response:
    return web.json_response(BODY)


def main() -> None:
    app = web.Application()
    app.router.add_get("/api/razorpay/payment-status/{booking_id}", constant)
    app.router.add_get("/healthz", constant)
    web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), access_log=None, print=None)


if __name__ == "__main__":
    main()
