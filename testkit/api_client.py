"""Short calls for e2e tests: the public API through the gateway, and the sandbox controls."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import random
import urllib.parse

import aiohttp

from shared.settings import SANDBOX_KEY_SECRET, SANDBOX_WEBHOOK_SECRET


def random_client() -> str:
    """An address from TEST-NET-3 (documentation range): the e2e gateway trusts loopback as
    a proxy, so each call can stand for its own client and no test eats another's budget."""
    return f"203.0.113.{random.randint(1, 254)}"


def random_admin_client() -> str:
    """The A6 Cars backend calls the admin API from a private network (ADMIN_ALLOWED_NETWORKS)."""
    return f"10.113.{random.randint(0, 255)}.{random.randint(1, 254)}"


async def call(http: aiohttp.ClientSession, method: str, url: str, client: str | None = None,
               **kw):
    """An API call stands for a client of its own (`client`, else a random one: a private
    address when it carries the admin token, as the A6 Cars backend's calls do); a call to
    an operator's endpoint (/metrics, /readyz) comes from this machine, as it is."""
    headers = dict(kw.pop("headers", None) or {})
    if client or "/api/" in url:
        as_admin = headers.get("Authorization") == f"Bearer {ADMIN_TOKEN}"
        headers.setdefault("X-Forwarded-For",
                           client or (random_admin_client() if as_admin else random_client()))
    async with http.request(method, url, allow_redirects=False, headers=headers, **kw) as resp:
        text = await resp.text()
        try:
            body = json.loads(text)
        except ValueError:
            body = text
        return resp.status, body, resp.headers


async def raw_request(url: str, head: bytes, body: bytes = b"") -> tuple[int, dict | str]:
    """Send `head` (request line and headers, as bytes no client library would send) and
    `body` to the server at `url`; return the answer's status and its JSON body."""
    parsed = urllib.parse.urlsplit(url)
    reader, writer = await asyncio.open_connection(parsed.hostname, parsed.port)
    try:
        writer.write(head.rstrip(b"\r\n") + b"\r\nHost: " + parsed.netloc.encode()
                     + b"\r\nConnection: close\r\nContent-Length: "
                     + str(len(body)).encode() + b"\r\n\r\n" + body)
        await writer.drain()
        answer = await asyncio.wait_for(reader.read(), 10)
    finally:
        writer.close()
    status_line, _, rest = answer.partition(b"\r\n")
    text = rest.partition(b"\r\n\r\n")[2].decode(errors="replace")
    try:
        return int(status_line.split()[1]), json.loads(text)
    except ValueError:
        return int(status_line.split()[1]), text


async def create_order(http, stack, booking, **overrides):
    body = {"booking_id": booking["booking_id"], "customer_id": booking["customer_id"],
            "amount": booking["amount"], **overrides}
    return await call(http, "POST", f"{stack.gateway}/api/razorpay/create-order", json=body)


async def payment_status(http, stack, booking_id):
    return await call(http, "GET", f"{stack.gateway}/api/razorpay/payment-status/{booking_id}")


async def pay(http, stack, order_id, outcome="captured", **webhooks):
    """Pay at the sandbox's checkout; webhooks default to delivered once."""
    options = {"enabled": True, **webhooks}
    status, body, _ = await call(
        http, "POST", f"{stack.sandbox}/sandbox/orders/{order_id}/pay",
        json={"outcome": outcome, "webhooks": options},
    )
    assert status == 200, body
    return body


async def verify(http, stack, booking, checkout, **overrides):
    body = {
        "razorpay_payment_id": checkout.get("razorpay_payment_id"),
        "razorpay_order_id": checkout.get("razorpay_order_id"),
        "razorpay_signature": checkout.get("razorpay_signature"),
        "booking_id": booking["booking_id"],
        "customer_id": booking["customer_id"],
        **overrides,
    }
    return await call(http, "POST", f"{stack.gateway}/api/razorpay/verify-payment", json=body)


def checkout_signature(order_id: str, payment_id: str, secret: str = SANDBOX_KEY_SECRET) -> str:
    return hmac.new(secret.encode(), f"{order_id}|{payment_id}".encode(), "sha256").hexdigest()


def webhook_body(event: str, payment: dict, order: dict | None = None, created_at=1_700_000_000):
    payload = {"payment": {"entity": payment}}
    if order is not None:
        payload["order"] = {"entity": order}
    return json.dumps({
        "entity": "event", "account_id": "acc_TestA6Pay0001", "event": event,
        "contains": list(payload), "payload": payload, "created_at": created_at,
    }).encode()


async def send_webhook(http, stack, raw: bytes, secret: str = SANDBOX_WEBHOOK_SECRET,
                       event_id: str | None = None, signature: str | None = None,
                       client: str | None = None):
    headers = {"Content-Type": "application/json"}
    headers["X-Razorpay-Signature"] = signature if signature is not None else hmac.new(
        secret.encode(), raw, hashlib.sha256).hexdigest()
    if event_id:
        headers["X-Razorpay-Event-Id"] = event_id
    return await call(http, "POST", f"{stack.gateway}/api/razorpay/webhook", data=raw,
                      headers=headers, client=client)


async def sandbox_stats(http, stack):
    return (await call(http, "GET", f"{stack.sandbox}/sandbox/stats"))[1]


async def set_fault(http, stack, **rule):
    status, body, _ = await call(http, "POST", f"{stack.sandbox}/sandbox/faults", json=rule)
    assert status == 200, body


# what testkit/stack.py gives the stack as ADMIN_API_TOKEN
ADMIN_TOKEN = "a6-e2e-admin-token-for-the-test-stack-only"


def _admin_headers(key: str | None, token: str | None) -> dict:
    headers = {}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    if key is not None:
        headers["Idempotency-Key"] = key
    return headers


async def cancel_booking(http, stack, booking_id, key: str | None, body: dict | None = None,
                         token: str | None = ADMIN_TOKEN):
    return await call(http, "POST", f"{stack.gateway}/api/razorpay/bookings/{booking_id}/cancel",
                      client=random_admin_client(), json=body or {},
                      headers=_admin_headers(key, token))


async def refund(http, stack, body: dict, key: str | None, token: str | None = ADMIN_TOKEN):
    return await call(http, "POST", f"{stack.gateway}/api/razorpay/refunds", json=body,
                      client=random_admin_client(), headers=_admin_headers(key, token))


async def set_refund_behaviour(http, stack, **behaviour):
    """`outcome` ("processed" | "failed") and/or `delay_seconds` for the sandbox's refunds."""
    status, body, _ = await call(http, "POST", f"{stack.sandbox}/sandbox/refunds",
                                 json=behaviour)
    assert status == 200, body


STAFF_TOKEN = "a6-e2e-staff-token-for-the-test-stack-only"  # testkit/stack.py: STAFF_API_TOKEN


async def scan_pass(http, stack, token: str, staff_token: str | None = STAFF_TOKEN):
    """A pass scanned at the counter, through the gateway."""
    headers = {"Authorization": f"Bearer {staff_token}"} if staff_token is not None else {}
    return await call(http, "POST", f"{stack.gateway}/api/passes/scan", json={"token": token},
                      headers=headers)
