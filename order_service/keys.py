"""order_service's own app keys."""

import asyncpg
from aiohttp import web

from order_service.handlers import StatusReads

# create-order claims its booking (order_claims) and holds no lock or transaction while it
# waits for Razorpay; its claims and records still run through a pool of their own, so a
# burst of creates never takes the connections payment-status and the relay need.
CREATE_POOL = web.AppKey("create_pool", asyncpg.Pool)

# payment-status reads in flight share one query (order_service/handlers.status_reads)
STATUS_READS: web.AppKey[StatusReads] = web.AppKey("status_reads")
