"""payment-status requests in flight share one call to order_service.

A status request is the hottest call the frontend makes (it polls), and on its own each
would cost a whole HTTP exchange with order_service, more CPU than the indexed read it
asks for. So the gateway coalesces them (shared/coalesce.py): while a call is in flight, the status
requests that arrive wait, and the next call carries them all (shared/status_batch.py).
Every request is still authenticated and rate limited on its own before it waits, and gets
exactly the status and body the public route would have given it; a call that fails (the
service away or too slow) gives each of its requests the answer a single one would have.
"""

from __future__ import annotations

import asyncio
import json

from aiohttp import web

from gateway import keys
from gateway.errors import UPSTREAM_TIMEOUT
from gateway.middlewares import request_id_from
from gateway.proxy import response_of, send
from gateway.upstream import Answer, Upstream, UpstreamPool
from shared import status_batch
from shared.coalesce import Coalescer
from shared.deadline import DEADLINE_HEADER, deadline_header
from shared.http import HttpError, booking_id_from

StatusRead = tuple[str, str | None]  # (the booking id as sent, the authenticated customer)
_JSON = {"content-type": "application/json; charset=utf-8"}


def status_batcher(pool: UpstreamPool, upstream: Upstream,
                   timeout_seconds: float) -> Coalescer[StatusRead, Answer]:
    async def fetch(reads: list[StatusRead]) -> list[Answer]:
        headers = [("Content-Type", "application/json"), ("X-Request-Id", request_id_from(None)),
                   (DEADLINE_HEADER, deadline_header(timeout_seconds))]
        body = json.dumps({"reads": reads}).encode()
        answer = await send(pool, upstream, "POST", status_batch.PATH, headers, body,
                            timeout_seconds)
        if answer.status != 200:  # the service's own 503/504: every read's answer
            return [answer] * len(reads)
        return [Answer(status, "", _JSON, text.encode())
                for status, text in json.loads(answer.body)["answers"]]

    return Coalescer(fetch, max_batch=status_batch.MAX_READS,
                     in_flight=status_batch.IN_FLIGHT)


async def read_status(request: web.Request, customer_id: str | None,
                      timeout_seconds: float) -> web.Response:
    """This request's answer, from the next call to order_service; 504 if the calls ahead
    of it and its own take longer than the gateway waits."""
    booking_id = request.match_info["booking_id"]
    booking_id_from(booking_id)  # a malformed id is this request's 400, not the batch's
    try:
        async with asyncio.timeout(timeout_seconds):
            answer = await request.app[keys.STATUS_BATCHER].get((booking_id, customer_id))
    except TimeoutError:
        raise HttpError(UPSTREAM_TIMEOUT, 504) from None
    return response_of(answer)
