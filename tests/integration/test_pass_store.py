"""Pass images are rendered at most once per booking, when someone first needs them:
the notifier's confirmation stores the tokens only; whoever needs the picture first (verify,
or the confirmation mail) renders and stores it; everyone after reads the stored image."""

import asyncio

from shared import passes
from shared.events import Envelope, PaymentCaptured
from shared.pass_store import issue_passes, stored_passes
from testkit.factories import make_booking
from tests.support.notifier import apply_event
from tests.support.pass_tokens import expected_passes

SECRET = "pass-store-secret"


async def paid_booking(pool) -> dict:
    """A booking with a captured payment: passes are issued for nothing less."""
    booking = await make_booking(pool)
    n = booking["booking_id"]
    await pool.execute(
        "INSERT INTO payments (booking_id, customer_id, razorpay_order_id, receipt,"
        " amount_paise, status, razorpay_payment_id) VALUES ($1,$2,$3,'r',$4,'captured',$5)",
        n, booking["customer_id"], f"order_PassPaid{n:08d}", booking["amount_paise"],
        f"pay_PassPaid{n:010d}")
    return booking


def renders() -> int:
    """How often an image has been asked for (cached or not)."""
    info = passes.qr_data_url.cache_info()
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
    booking = await paid_booking(pool)
    async with pool.acquire() as conn:
        issued = await issue_passes(conn, booking["booking_id"], SECRET)
        assert issued == await stored_passes(conn, booking["booking_id"])
    assert issued == expected_passes(booking["booking_id"], SECRET)


async def test_stored_passes_are_read_not_rendered_again(pool):
    booking = await paid_booking(pool)
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


async def confirm(pool, booking) -> None:
    n = booking["booking_id"]
    envelope = Envelope.wrap(PaymentCaptured(
        booking_id=n, customer_id=booking["customer_id"], order_id=f"order_PassLazy{n:07d}",
        payment_id=f"pay_PassLazy{n:08d}", amount_paise=booking["amount_paise"],
        source="webhook"), "test")
    async with pool.acquire() as conn:
        await conn.execute(
            "INSERT INTO payments (booking_id, customer_id, razorpay_order_id, receipt,"
            " amount_paise, status, razorpay_payment_id) VALUES ($1,$2,$3,'r',$4,'captured',$5)",
            n, booking["customer_id"], envelope.data["order_id"], booking["amount_paise"],
            envelope.data["payment_id"])
        assert await apply_event(conn, envelope.event(), envelope.id, pass_secret=SECRET)


async def test_a_confirmation_stores_the_tokens_and_renders_nothing(pool):
    booking = await make_booking(pool)
    before = renders()
    await confirm(pool, booking)
    assert renders() == before
    async with pool.acquire() as conn:
        stored = await stored_passes(conn, booking["booking_id"])
    expected = expected_passes(booking["booking_id"], SECRET)
    assert stored == {kind: (token, None) for kind, (token, _) in expected.items()}
    # the first who needs the pictures draws them, from the stored tokens, and keeps them
    async with pool.acquire() as conn:
        assert await issue_passes(conn, booking["booking_id"], SECRET) == expected
        assert await stored_passes(conn, booking["booking_id"]) == expected


async def test_an_image_is_drawn_from_the_stored_token_and_never_replaced(pool):
    booking = await make_booking(pool)
    await confirm(pool, booking)  # tokens signed with SECRET
    async with pool.acquire() as conn:
        # the signing secret rotated since: the stored pass still shows its own token
        issued = await issue_passes(conn, booking["booking_id"], "rotated-secret")
        assert issued == expected_passes(booking["booking_id"], SECRET)
        await conn.execute("UPDATE passes SET qr_data_url = 'data:image/png;base64,kept'"
                           " WHERE booking_id = $1 AND kind = 'return'", booking["booking_id"])
        again = await issue_passes(conn, booking["booking_id"], SECRET)
    assert again["return"][1] == "data:image/png;base64,kept"


async def test_racing_issuers_all_answer_with_what_is_stored(pool):
    booking = await make_booking(pool)
    await confirm(pool, booking)

    async def issue():
        async with pool.acquire() as conn:
            return await issue_passes(conn, booking["booking_id"], SECRET)

    answers = await asyncio.gather(*(issue() for _ in range(4)))
    async with pool.acquire() as conn:
        stored = await stored_passes(conn, booking["booking_id"])
    assert all(answer == stored for answer in answers)
    assert stored == expected_passes(booking["booking_id"], SECRET)


async def test_rows_written_meanwhile_with_other_tokens_get_images_of_their_own_tokens(pool):
    """Mid-rotation: the notifier (old secret) writes the pass rows while verify (new
    secret) renders from tokens of its own. Verify's images must not land on rows whose
    tokens they do not show: it draws again from the stored tokens."""
    booking = await paid_booking(pool)
    booking_id = booking["booking_id"]
    old_tokens = {kind: passes.pass_token(booking_id, kind, "old-secret")
                  for kind in passes.PASS_KINDS}
    async with pool.acquire() as writer, pool.acquire() as reader:
        tx = writer.transaction()
        await tx.start()
        await writer.executemany(
            "INSERT INTO passes (booking_id, kind, token) VALUES ($1, $2, $3)",
            [(booking_id, kind, token) for kind, token in old_tokens.items()])
        # verify reads no rows (uncommitted), renders, then waits on the rows' unique index
        issuing = asyncio.create_task(issue_passes(reader, booking_id, "new-secret"))
        for _ in range(100):
            waiting = await pool.fetchval(
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
                " AND query LIKE '%INSERT INTO passes%'")
            if waiting:
                break
            await asyncio.sleep(0.05)
        assert waiting, "verify never reached the rows' lock"
        await tx.commit()
        issued = await issuing
    assert issued == {kind: (token, passes.qr_data_url(token))
                      for kind, token in old_tokens.items()}
    async with pool.acquire() as conn:
        assert await stored_passes(conn, booking_id) == issued
