"""What the mail tests share: a booking confirmed as the notifier confirms it (its mail
enqueued), its mail rows, and the mails the catcher holds for it."""

from __future__ import annotations

from datetime import timedelta

from shared.events import Envelope, PaymentCaptured
from tests.support.notifier import apply_event

SECRET = "mail-test-pass-secret"


async def confirm(pool, booking, mail_after: timedelta = timedelta(0)) -> None:
    """What the notifier does on payment.captured: confirm, passes, enqueue the mail (for a
    captured payment on record: the notifier believes no event alone)."""
    n = booking["booking_id"]
    event = PaymentCaptured(
        booking_id=n, customer_id=booking["customer_id"],
        order_id=f"order_Mail{n:010d}", payment_id=f"pay_Mail{n:012d}",
        amount_paise=booking["amount_paise"], source="verify")
    async with pool.acquire() as conn:
        await conn.execute(
            "INSERT INTO payments (booking_id, customer_id, razorpay_order_id, receipt,"
            " amount_paise, status, razorpay_payment_id) VALUES ($1,$2,$3,'r',$4,'captured',$5)",
            n, event.customer_id, event.order_id, event.amount_paise, event.payment_id)
        assert await apply_event(conn, event, Envelope.wrap(event, "t").id, pass_secret=SECRET,
                                 mail_after=mail_after)


async def mails_of(pool, booking_id):
    return await pool.fetch(
        "SELECT state, attempts, last_error, message_id, sent_at, next_attempt_at <= now()"
        " AS due FROM notifications WHERE booking_id = $1 ORDER BY id", booking_id)


def caught_for(catcher, booking_id):
    return [m for m in catcher.mails if m.message["X-A6Pay-Booking"] == str(booking_id)]
