"""The seed's rate limits, per client, through the live gateway."""

import asyncio
import json

import pytest

from testkit.api_client import call, send_webhook

pytestmark = pytest.mark.e2e


async def test_create_order_is_limited_per_client_and_the_webhook_never(stack, http):
    url = f"{stack.gateway}/api/razorpay/create-order"
    me, other = "198.51.100.7", "198.51.100.8"
    loop = asyncio.get_running_loop()
    started = loop.time()
    answers = await asyncio.gather(*(call(http, "POST", url, client=me, json={})
                                     for _ in range(100)))
    assert {a[0] for a in answers} == {400}  # within the limit: the service answered
    # The bucket refills at 100/min while a loaded machine sends the burst: allow what
    # refilled meanwhile, then the limit must answer.
    for _ in range(int((loop.time() - started) * 100 / 60) + 2):
        status, body, headers = await call(http, "POST", url, client=me, json={})
        if status == 429:
            break
    assert status == 429 and body["message"].startswith("Too many requests")
    assert int(headers["Retry-After"]) >= 1
    assert (await call(http, "POST", url, client=other, json={}))[0] == 400
    raw = json.dumps({"event": "refund.processed", "payload": {}, "created_at": 3}).encode()
    assert (await send_webhook(http, stack, raw, client=me))[0] == 200


async def test_payment_status_allows_a_thousand_a_minute(stack, http):
    url = f"{stack.gateway}/api/razorpay/payment-status/999999999"
    me = "198.51.100.9"
    loop = asyncio.get_running_loop()
    started = loop.time()
    answers = await asyncio.gather(*(call(http, "GET", url, client=me) for _ in range(1100)))
    elapsed = loop.time() - started
    served = sum(a[0] == 404 for a in answers)
    # a burst of 1000, plus what the rate (1000/min) refills while the burst is sent
    assert 1000 <= served <= 1000 + int(elapsed * 1000 / 60) + 1
    assert served + sum(a[0] == 429 for a in answers) == 1100
