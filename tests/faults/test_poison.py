"""Poison messages reach the dead-letter queue (at once if unreadable, after the delivery
limit if the handler keeps failing) without holding up the queue; `a6pay dlq list` shows
them and `a6pay dlq replay` re-drives them once the cause is fixed."""

from __future__ import annotations

import asyncio
import uuid

import aio_pika
import pytest

from shared.events import Envelope, PaymentCaptured
from shared.messaging import declare_exchange
from testkit.api_client import pay
from testkit.factories import make_booking
from testkit.infra import eventually
from tests.e2e.flows import a6pay, booking_with_order
from tests.faults.conftest import DELIVERY_LIMIT
from tests.faults.helpers import booking_states, wait_all_confirmed_once

pytestmark = pytest.mark.e2e


async def publish(settings, body: bytes, message_id: str, routing_key: str) -> None:
    connection = await aio_pika.connect(settings.amqp_url, timeout=10)
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        exchange = await declare_exchange(channel, settings)
        await exchange.publish(
            aio_pika.Message(body=body, message_id=message_id, content_type="application/json",
                             delivery_mode=aio_pika.DeliveryMode.PERSISTENT),
            routing_key=routing_key, mandatory=True)


async def dead_letters(stack) -> dict[str, dict]:
    listed = await asyncio.to_thread(a6pay, stack, "dlq", "list", "--limit", "500")
    return {entry["message_id"]: entry for entry in listed["dead_letters"]}


async def test_poison_is_dead_lettered_listed_and_replayed(stack, settings, http, pool):
    # A capture for a booking that is not there (yet): the handler fails on every delivery.
    ghost = await make_booking(pool)
    async with pool.acquire() as conn:
        row = dict(await conn.fetchrow("DELETE FROM bookings WHERE id = $1 RETURNING *",
                                       ghost["booking_id"]))
    capture = Envelope.wrap(PaymentCaptured(
        booking_id=ghost["booking_id"], customer_id=ghost["customer_id"],
        order_id="order_Ghost0000000001", payment_id="pay_Ghost00000000001",
        amount_paise=ghost["amount_paise"], source="webhook"), "test")
    garbage_id = str(uuid.uuid4())
    await publish(settings, capture.model_dump_json().encode(), str(capture.id),
                  capture.type)
    await publish(settings, b"{not an event", garbage_id, "payment.captured")

    # the queue keeps moving behind them: a real payment is confirmed meanwhile
    booking, order_id = await booking_with_order(http, stack, pool)
    await pay(http, stack, order_id)
    await wait_all_confirmed_once(pool, [booking["booking_id"]], timeout=15)

    async def both_dead():
        letters = await dead_letters(stack)
        return letters if {str(capture.id), garbage_id} <= set(letters) else None

    letters = await eventually(both_dead, timeout=30, interval=0.5)
    dead_capture, dead_garbage = letters[str(capture.id)], letters[garbage_id]
    assert (dead_capture["reason"], dead_capture["routing_key"]) == (
        "delivery_limit", "payment.captured")
    assert (dead_garbage["reason"], dead_garbage["routing_key"]) == (
        "rejected", "payment.captured")
    assert dead_garbage["body"] == "{not an event"
    assert "pay_Ghost" not in dead_capture["body"]  # payment ids are scrubbed in the preview
    assert set(await dead_letters(stack)) >= set(letters)  # listing consumed nothing
    stack_logs = stack.logs()
    assert stack_logs.count(f'"event_id": "{capture.id}"') >= DELIVERY_LIMIT  # retried first

    # fix the cause, then re-drive: the capture applies once; the garbage dies again
    async with pool.acquire() as conn:
        await conn.execute(
            "INSERT INTO bookings (id, customer_id, car_id, amount_paise, start_date,"
            " end_date, status, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            *(row[k] for k in ("id", "customer_id", "car_id", "amount_paise", "start_date",
                               "end_date", "status", "created_at")))
        # and the captured payment the event reports (the notifier believes no event alone)
        await conn.execute(
            "INSERT INTO payments (booking_id, customer_id, razorpay_order_id, receipt,"
            " amount_paise, status, razorpay_payment_id) VALUES ($1,$2,$3,'r',$4,'captured',$5)",
            ghost["booking_id"], ghost["customer_id"], "order_Ghost0000000001",
            ghost["amount_paise"], "pay_Ghost00000000001")
    replayed = await asyncio.to_thread(a6pay, stack, "dlq", "replay")
    assert replayed["replayed"] >= 2

    async def confirmed():
        state = (await booking_states(pool, [ghost["booking_id"]]))[ghost["booking_id"]]
        return state["status"] == "confirmed" and state["passes"] == 2 and state[
            "confirmations"] == 1

    await eventually(confirmed, timeout=15)

    async def garbage_back_alone():
        letters = await dead_letters(stack)
        return garbage_id in letters and str(capture.id) not in letters

    await eventually(garbage_back_alone, timeout=15, interval=0.5)
