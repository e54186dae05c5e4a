"""The gateway's payment-status reads, many in one call to order_service (its own route,
not the public API): the gateway coalesces the status requests it has in flight
(gateway/status_batch.py) and order_service answers them with one query
(order_service/views.py: payment_statuses). Each answer is the status code and the exact
JSON body that `GET /api/razorpay/payment-status/{booking_id}` gives for that read.

    POST /internal/payment-statuses  {"reads": [[booking_id, customer_id or null], ...]}
    200  {"answers": [[status, body], ...]}   in the order asked

booking_id is the path segment as the client sent it (order_service checks it as the
public route does); customer_id is what the gateway would pass in X-A6-Customer-Id.
"""

from __future__ import annotations

PATH = "/internal/payment-statuses"
MAX_READS = 128  # per call, and per query: a few ms of order_service and PostgreSQL at most
# Calls (the gateway's) and queries (order_service's) in flight per process: more than one,
# so one that waits on the disk (a booking long out of PostgreSQL's cache) holds up no other.
IN_FLIGHT = 2
