"""order_service's own app keys."""

import asyncpg
from aiohttp import web

from order_service.handlers import StatusReads

# create-order holds a booking row lock while it waits for Razorpay, so it gets a pool of
# its own: a slow Razorpay then stalls only creates, never payment-status or the relay.
CREATE_POOL = web.AppKey("create_pool", asyncpg.Pool)

# payment-status reads in flight share one query (order_service/handlers.status_reads)
STATUS_READS: web.AppKey[StatusReads] = web.AppKey("status_reads")
