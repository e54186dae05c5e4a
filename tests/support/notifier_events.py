"""The payment.captured events the notifier tests send, each backed by the payment row our
services would have written, and what a booking looks like to the notifier afterwards."""

from __future__ import annotations

from shared.events import Envelope, PaymentCaptured


def captured(booking: dict, payment_id: str | None = None) -> Envelope:
    return Envelope.wrap(
        PaymentCaptured(
            booking_id=booking["booking_id"],
            customer_id=booking["customer_id"],
            order_id=f"order_Itg{booking['booking_id']:010d}",
            payment_id=payment_id or f"pay_Itg{booking['booking_id']:011d}",
            amount_paise=booking["amount_paise"],
            source="webhook",
        ),
        "test",
    )


async def recorded_capture(pool, booking: dict) -> Envelope:
    """The captured payment our services would have recorded, and its event."""
    envelope = captured(booking)
    async with pool.acquire() as conn:
        await conn.execute(
            "INSERT INTO payments (booking_id, customer_id, razorpay_order_id, receipt,"
            " amount_paise, status, razorpay_payment_id) VALUES ($1,$2,$3,'r',$4,'captured',$5)",
            booking["booking_id"], booking["customer_id"], envelope.data["order_id"],
            booking["amount_paise"], envelope.data["payment_id"])
    return envelope


def rewrap(envelope: Envelope) -> Envelope:
    """The same fact under a new event id (e.g. verify and webhook both reporting it)."""
    return Envelope(type=envelope.type, producer="other", data=envelope.data)


async def state(pool, booking_id: int) -> dict:
    async with pool.acquire() as conn:
        return {
            "status": await conn.fetchval("SELECT status FROM bookings WHERE id=$1", booking_id),
            "passes": await conn.fetch(
                "SELECT kind, token, qr_data_url FROM passes WHERE booking_id=$1 ORDER BY kind",
                booking_id,
            ),
            "notifications": await conn.fetch(
                "SELECT kind, dedupe_key, recipient, details, state FROM notifications"
                " WHERE booking_id=$1 ORDER BY id",
                booking_id,
            ),
        }
