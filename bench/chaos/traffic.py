"""Drives each booking's plan through the gateway and the sandbox's checkout, like a
browser (create-order, pay, verify, payment-status) and like an attacker (forged webhooks
and verify calls). Everything it sees is recorded; anything unexpected is kept as a note."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import random
import secrets
import uuid
from collections import Counter
from dataclasses import dataclass, field

import aiohttp
import asyncpg

from bench.chaos.after_capture import after_capture
from bench.chaos.plan import Plan
from bench.chaos.record import Recorder
from shared.settings import SANDBOX_WEBHOOK_SECRET
from testkit.api_client import ADMIN_TOKEN
from testkit.factories import make_booking

WRONG_SECRET = "guessed_secret_" + "x" * 16


@dataclass
class Traffic:
    http: aiohttp.ClientSession
    pool: asyncpg.Pool
    gateway: str
    sandbox: str
    recorder: Recorder
    rng: random.Random
    order_ids: set[str] = field(default_factory=set)
    forged: Counter = field(default_factory=Counter)  # kind -> sent
    forged_accepted: list[tuple[str, int | None]] = field(default_factory=list)
    anomalies: list[str] = field(default_factory=list)  # unexpected answers to honest calls
    done: int = 0
    paid_checkouts: list[dict] = field(default_factory=list)  # genuine fields, for forgeries
    bookings: list[dict] = field(default_factory=list)

    def client(self, admin: bool = False) -> dict:
        """A client address per call: the gateway trusts loopback as a proxy. The A6 Cars
        backend calls the admin API from its private network (ADMIN_ALLOWED_NETWORKS)."""
        net = "10.113" + f".{self.rng.randint(0, 255)}" if admin else self.rng.choice(
            ["203.0.113", "198.51.100"])
        return {"X-Forwarded-For": f"{net}.{self.rng.randint(1, 254)}"}

    async def api(self, target: str, method: str, path: str, **kw):
        extra = kw.pop("headers", {})
        as_admin = extra.get("Authorization") == f"Bearer {ADMIN_TOKEN}"
        headers = {**self.client(as_admin), **extra}
        return await self.recorder.call(
            self.http, target, method, self.gateway + path, headers=headers, **kw)

    def unexpected(self, plan: Plan, what: str, status, body) -> None:
        text = body if isinstance(body, str) else json.dumps(body)
        self.anomalies.append(f"booking#{plan.index} {plan.scenario}: {what} -> {status} "
                              f"{text[:160]}")


async def run_booking(t: Traffic, plan: Plan) -> None:
    booking = await make_booking(t.pool, plan.amount_paise)
    t.bookings.append(booking)
    plan.booking_id = booking["booking_id"]
    order_id = await _create_order(t, plan, booking)
    if order_id is None:
        return
    plan.ordered = True
    if plan.scenario == "cancelled_then_paid":
        answer = await _admin(t, plan, "admin_cancel",
                              f"/api/razorpay/bookings/{booking['booking_id']}/cancel", {})
        plan.cancelled = answer is not None
        plan.refunds_made += answer is not None  # the capture below is refunded automatically
    first = {"failed": "failed", "failed_then_captured": "failed",
             "late_authorized": "late_authorized", "authorized": "authorized"}
    checkout = await _pay(t, plan, order_id, first.get(plan.scenario, "captured"),
                          plan.webhooks)
    if plan.scenario == "failed_then_captured":
        await _forge(t, plan, booking, order_id, checkout)  # while the booking is unpaid
        again = await _create_order(t, plan, booking)
        if again != order_id:
            t.unexpected(plan, "create-order after a failed attempt gave another order",
                         again, order_id)
        checkout = await _pay(t, plan, order_id, "captured", plan.retry_webhooks)
    if plan.verify and "razorpay_signature" in checkout:
        await _verify(t, plan, booking, checkout)
        if plan.verify_twice:
            await _verify(t, plan, booking, checkout)
    if plan.scenario != "failed_then_captured":
        await _forge(t, plan, booking, order_id, checkout)
    if plan.poll_status:
        status, body = await t.api("payment_status", "GET",
                                   f"/api/razorpay/payment-status/{booking['booking_id']}")
        if status != 200:
            t.unexpected(plan, "payment-status", status, body)
    if plan.ends_paid and "razorpay_signature" in checkout:
        t.paid_checkouts.append({**checkout, "booking": booking})
    if plan.refund_action is not None:
        await _refund_action(t, plan, booking)
    if plan.after_capture is not None:
        await after_capture(t, plan, booking, _confirmed_within)


async def _refund_action(t: Traffic, plan: Plan, booking: dict) -> None:
    """What the site's backend does to a confirmed booking: refund part of it (once or
    twice), all of it, or cancel it with a fee. Only once it is confirmed, so the expected
    passes and mails do not depend on a race with the notifier."""
    booking_id, amount = booking["booking_id"], booking["amount_paise"]
    if not await _confirmed_within(t, booking_id, 90):
        t.unexpected(plan, "booking not confirmed in time for its refund", None, "")
        plan.refund_action = None
        return
    refund = "/api/razorpay/refunds"
    if plan.refund_action in ("partial", "partial_twice"):
        for _ in range(2 if plan.refund_action == "partial_twice" else 1):
            body = {"booking_id": booking_id, "amount": amount // 3 / 100}
            plan.refunds_made += await _admin(t, plan, "admin_refund", refund, body) is not None
    elif plan.refund_action == "full":
        body = {"booking_id": booking_id}
        plan.refunds_made += await _admin(t, plan, "admin_refund", refund, body) is not None
    elif plan.refund_action == "cancel":
        body = {"reason": "chaos", "cancellation_fee": amount // 10 / 100}
        answer = await _admin(t, plan, "admin_cancel",
                              f"/api/razorpay/bookings/{booking_id}/cancel", body)
        plan.cancelled = answer is not None
        plan.refunds_made += bool(answer and answer.get("refund"))


async def _confirmed_within(t: Traffic, booking_id: int, seconds: float) -> bool:
    for _ in range(int(seconds * 2)):
        status = await t.pool.fetchval("SELECT status FROM bookings WHERE id = $1", booking_id)
        if status == "confirmed":
            return True
        await asyncio.sleep(0.5)
    return False


async def _admin(t: Traffic, plan: Plan, target: str, path: str, body: dict) -> dict | None:
    """An admin call with one Idempotency-Key, retried on 5xx; then sent once more with the
    same key, whose answer must be the first one again."""
    headers = {"Authorization": f"Bearer {ADMIN_TOKEN}", "Idempotency-Key": str(uuid.uuid4())}
    for attempt in range(5):
        status, answer = await t.api(target, "POST", path, json=body, headers=headers)
        if status is not None and status < 500 and status != 409:
            break
        await asyncio.sleep(0.5 * 2**attempt)
    if status != 200:
        t.unexpected(plan, target, status, answer)
        return None
    again = await t.api(target, "POST", path, json=body, headers=headers)
    if again != (200, answer):
        t.unexpected(plan, f"{target} retried with the same key", again[0], again[1])
    return answer


async def _create_order(t: Traffic, plan: Plan, booking: dict) -> str | None:
    body = {"booking_id": booking["booking_id"], "customer_id": booking["customer_id"],
            "amount": booking["amount"]}
    for attempt in range(4):  # a browser retries a failed create a few times
        status, answer = await t.api("create_order", "POST", "/api/razorpay/create-order",
                                     json=body)
        if status == 200:
            t.order_ids.add(answer["order_id"])
            return answer["order_id"]
        t.unexpected(plan, f"create-order attempt {attempt + 1}", status, answer)
        await asyncio.sleep(0.5 * 2**attempt)
    return None


async def _pay(t: Traffic, plan: Plan, order_id: str, outcome: str, webhooks) -> dict:
    status, body = await t.recorder.call(
        t.http, "sandbox_pay", "POST", f"{t.sandbox}/sandbox/orders/{order_id}/pay",
        json={"outcome": outcome, "webhooks": webhooks.options()})
    if status != 200 or not isinstance(body, dict):
        t.unexpected(plan, f"sandbox pay {outcome}", status, body)
        return {}
    return body


def _verify_body(booking: dict, checkout: dict, **overrides) -> dict:
    return {
        "razorpay_payment_id": checkout.get("razorpay_payment_id"),
        "razorpay_order_id": checkout.get("razorpay_order_id"),
        "razorpay_signature": checkout.get("razorpay_signature"),
        "booking_id": booking["booking_id"],
        "customer_id": booking["customer_id"],
        **overrides,
    }


async def _verify(t: Traffic, plan: Plan, booking: dict, checkout: dict) -> None:
    status, body = await t.api("verify", "POST", "/api/razorpay/verify-payment",
                               json=_verify_body(booking, checkout))
    expected = 200 if plan.ends_paid else 400  # authorized: "Payment not captured …"
    if status != expected:
        t.unexpected(plan, "verify", status, body)


# Forgeries: any 2xx to a forged webhook, any 200 to a forged verify, is "accepted".


def _payment_id(checkout: dict) -> str:
    """The attempt's real payment id, or a made-up one if checkout gave none."""
    return (checkout.get("payment") or {}).get("id") or "pay_" + secrets.token_hex(7)


def _captured_event(order_id: str, payment_id: str, amount: int) -> bytes:
    entity = {"id": payment_id, "entity": "payment", "amount": amount, "currency": "INR",
              "status": "captured", "order_id": order_id, "captured": True}
    return json.dumps({
        "entity": "event", "account_id": "acc_SandboxA6Pay01", "event": "payment.captured",
        "contains": ["payment"], "payload": {"payment": {"entity": entity}},
        "created_at": 1_700_000_000,
    }, separators=(",", ":")).encode()


async def _forge(t: Traffic, plan: Plan, booking: dict, order_id: str, checkout: dict):
    payment_id = _payment_id(checkout)
    amount = booking["amount_paise"]
    for kind in plan.forgeries:
        t.forged[kind] += 1
        if kind.startswith("webhook_"):
            raw = _captured_event(order_id, payment_id, amount)
            signature = hmac.new(SANDBOX_WEBHOOK_SECRET.encode(), raw, hashlib.sha256)
            if kind == "webhook_wrong_secret":
                signature = hmac.new(WRONG_SECRET.encode(), raw, hashlib.sha256)
            elif kind == "webhook_tampered":
                raw = raw.replace(f'"amount":{amount}'.encode(), b'"amount":100')
            headers = {"Content-Type": "application/json",
                       "X-Razorpay-Event-Id": "evt_forged_" + secrets.token_hex(6)}
            if kind != "webhook_unsigned":
                headers["X-Razorpay-Signature"] = signature.hexdigest()
            status, _ = await t.api("forged_webhook", "POST", "/api/razorpay/webhook",
                                    data=raw, headers=headers)
            accepted = status is not None and 200 <= status < 300
        else:
            body = _forged_verify_body(t, kind, booking, order_id, payment_id, checkout)
            if body is None:
                t.forged[kind] -= 1
                continue
            status, _ = await t.api("forged_verify", "POST", "/api/razorpay/verify-payment",
                                    json=body)
            accepted = status == 200
        if accepted:
            t.forged_accepted.append((kind, status))


def _forged_verify_body(t: Traffic, kind, booking, order_id, payment_id, checkout):
    if kind == "verify_bad_signature":
        signature = hmac.new(WRONG_SECRET.encode(), f"{order_id}|{payment_id}".encode(),
                             hashlib.sha256).hexdigest()
        return _verify_body(booking, {"razorpay_order_id": order_id,
                                      "razorpay_payment_id": payment_id,
                                      "razorpay_signature": signature})
    if kind == "verify_other_booking":
        others = [b for b in t.bookings[-50:] if b["booking_id"] != booking["booking_id"]]
        if "razorpay_signature" not in checkout or not others:
            return None
        victim = t.rng.choice(others)
        return _verify_body(victim, checkout)
    if kind == "verify_borrowed_signature":
        donors = [c for c in t.paid_checkouts[-50:] if c["razorpay_order_id"] != order_id]
        if not donors:
            return None
        donor = t.rng.choice(donors)
        return _verify_body(booking, donor, razorpay_order_id=order_id)
    raise ValueError(kind)
