"""order_service's own app keys."""

import asyncpg
from aiohttp import web

# create-order holds a booking row lock while it waits for Razorpay, so it gets a pool of
# its own: a slow Razorpay then stalls only creates, never payment-status or the relay.
CREATE_POOL = web.AppKey("create_pool", asyncpg.Pool)
