"""Passes are rendered at most once per booking: whoever needs them first (verify or the
notifier) renders and stores them; everyone after reads the stored images."""

from notifier.handlers import apply_event
from ops.factories import make_booking
from shared import passes
from shared.events import Envelope, PaymentCaptured
from shared.pass_store import issue_passes, stored_passes

SECRET = "pass-store-secret"


def renders() -> int:
    """How often passes_for has been asked for a booking's images (cached or not)."""
    info = passes._passes.cache_info()
    return info.hits + info.misses


async def store_marked_passes(pool, booking_id: int) -> dict:
    """Stored images no renderer would produce: whoever returns them read them."""
    marked = {kind: (f"token-{kind}", f"data:image/png;base64,{kind}{booking_id}")
              for kind in passes.PASS_KINDS}
    await pool.executemany(
        "INSERT INTO passes (booking_id, kind, token, qr_data_url) VALUES ($1, $2, $3, $4)",
        [(booking_id, kind, token, url) for kind, (token, url) in marked.items()],
    )
    return marked


async def test_the_first_issuer_renders_and_stores_both(pool):
    booking = await make_booking(pool)
    async with pool.acquire() as conn:
        issued = await issue_passes(conn, booking["booking_id"], SECRET)
        assert issued == await stored_passes(conn, booking["booking_id"])
    assert issued == passes.passes_for(booking["booking_id"], SECRET)


async def test_stored_passes_are_read_not_rendered_again(pool):
    booking = await make_booking(pool)
    marked = await store_marked_passes(pool, booking["booking_id"])
    before = renders()
    async with pool.acquire() as conn:
        assert await issue_passes(conn, booking["booking_id"], SECRET) == marked
    assert renders() == before


async def test_the_notifier_reuses_passes_verify_stored(pool):
    booking = await make_booking(pool)
    marked = await store_marked_passes(pool, booking["booking_id"])
    envelope = Envelope.wrap(PaymentCaptured(
        booking_id=booking["booking_id"], customer_id=booking["customer_id"],
        order_id="order_PassStore0001", payment_id="pay_PassStore00001",
        amount_paise=booking["amount_paise"], source="verify"), "test")
    before = renders()
    async with pool.acquire() as conn:
        # the captured payment on record: the notifier believes no event alone
        await conn.execute(
            "INSERT INTO payments (booking_id, customer_id, razorpay_order_id, receipt,"
            " amount_paise, status, razorpay_payment_id) VALUES ($1,$2,$3,'r',$4,'captured',$5)",
            booking["booking_id"], booking["customer_id"], "order_PassStore0001",
            booking["amount_paise"], "pay_PassStore00001")
        assert await apply_event(conn, envelope.event(), envelope.id, pass_secret=SECRET)
        assert await stored_passes(conn, booking["booking_id"]) == marked
    assert renders() == before
    assert await pool.fetchval("SELECT status FROM bookings WHERE id = $1",
                               booking["booking_id"]) == "confirmed"
