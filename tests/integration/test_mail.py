"""The mail sender against a real SMTP server (the aiosmtpd catcher, on a free port):
a confirmation arrives once with both passes scannable; an SMTP outage delays mails and
loses none; a permanent refusal is failed, not retried, and shown by `a6pay booking`; a
sender that dies between claiming and sending loses nothing; a backlog goes out over
several connections at once, each mail once."""

from __future__ import annotations

import asyncio
import contextlib
import io
import ssl
import subprocess
from collections import Counter
from datetime import timedelta

import pytest
import zxingcpp
from PIL import Image

from notifier.mail_message import png_of
from notifier.mail_sender import CLAIM_DUE, MailSender
from ops.cli import booking as booking_command
from ops.cli import check_pass
from ops.mail_catcher import MailCatcher
from shared.events import Envelope, RefundProcessed
from shared.metrics import REGISTRY
from shared.pass_store import issue_passes
from shared.settings import SmtpTls
from testkit.factories import make_booking
from testkit.infra import eventually, free_port, own_database
from tests.support.mail import SECRET, caught_for, confirm, mails_of
from tests.support.notifier import apply_event
from tests.support.tasks import running


@pytest.fixture
async def db(base_settings, catcher):
    # A database of its own: the sender takes every pending mail it finds, and other
    # tests leave theirs pending in the shared one.
    async with own_database(
        base_settings,
        pass_signing_secret=SECRET,
        smtp_host="127.0.0.1",
        smtp_port=catcher.port,
        smtp_timeout_seconds=5,
        smtp_data_timeout_seconds=10,
        mail_poll_seconds=0.2,
        mail_retry_base_seconds=0.2,
        mail_retry_max_seconds=1.0,
        mail_lease_seconds=60,
    ) as (settings, pool):
        yield settings, pool


class CountingSender(MailSender):
    """The real sender, counting the claims it has finished: every round makes at least one
    and the last one of a round finds less than a full batch, so the count shows how many
    rounds ran and how many senders a wake set going."""

    claims = 0

    async def send_due(self) -> int:
        try:
            return await super().send_due()
        finally:
            self.claims += 1


@contextlib.asynccontextmanager
async def running_sender(pool, settings):
    sender = CountingSender(pool, settings)
    async with running(sender.run()):
        yield sender


async def email_of(pool, booking) -> str:
    return await pool.fetchval("SELECT email FROM customers WHERE id = $1",
                               booking["customer_id"])


async def settled(sender, rounds: int = 3) -> None:
    """Let the sender run a few more rounds (to see that nothing else goes out)."""
    target = sender.claims + rounds
    await eventually(lambda: _true(sender.claims >= target), timeout=30)


async def _true(value):
    return value


def mails_counted(outcome: str) -> float:
    return REGISTRY.get_sample_value(
        "a6pay_mails_total", {"kind": "payment_confirmed", "outcome": outcome}) or 0.0


async def test_confirmation_arrives_once_with_both_passes_scannable(db, catcher):
    settings, pool = db
    booking = await make_booking(pool, 250_000)
    email = await email_of(pool, booking)
    await confirm(pool, booking)
    async with running_sender(pool, settings) as sender:
        [row] = await eventually(lambda: _sent(pool, booking["booking_id"]), timeout=30)
        await settled(sender)
    [mail] = caught_for(catcher, booking["booking_id"])
    message = mail.message
    assert mail.rcpt_tos == [email] and email in str(message["To"])
    assert f"#{booking['booking_id']}" in str(message["Subject"])
    assert str(message["Message-ID"]) == row["message_id"]
    text, page = mail.body("plain"), mail.body("html")
    for part in (text, page):
        assert "Maruti Swift" in part and "28 Dec 2025 to 30 Dec 2025" in part
        assert "₹2,500.00" in part
    assert "pay_" not in text + page and "order_" not in text + page

    inline = {str(p["Content-ID"]).strip("<>"): p.get_payload(decode=True)
              for p in message.walk() if p["Content-ID"]}
    attached = {p.get_filename(): p.get_payload(decode=True)
                for p in message.iter_attachments()}
    assert set(inline) == {"collection-pass@a6pay", "return-pass@a6pay"}
    assert all(f'src="cid:{cid}"' in page for cid in inline)
    assert set(attached) == {"collection-pass.png", "return-pass.png"}
    for kind in ("collection", "return"):
        png = attached[f"{kind}-pass.png"]
        assert png == inline[f"{kind}-pass@a6pay"]
        [code] = zxingcpp.read_barcodes(Image.open(io.BytesIO(png)))
        checked = await check_pass(settings, code.text)  # what staff's scanner runs
        assert checked["valid"] is True
        assert (checked["booking_id"], checked["kind"]) == (booking["booking_id"], kind)
    # The confirmation rendered nothing; the mail drew the passes and stored them, and
    # verify-payment answers with exactly those images from now on.
    async with pool.acquire() as conn:
        issued = await issue_passes(conn, booking["booking_id"], "another-secret")
    assert {kind: png_of(url) for kind, (_, url) in issued.items()} == {
        kind: attached[f"{kind}-pass.png"] for kind in ("collection", "return")}


async def _failed(pool, booking_id):
    """The booking's one mail, once it is failed for good."""
    [row] = await mails_of(pool, booking_id)
    return row if row["state"] == "failed" else None


async def _sent(pool, booking_id):
    rows = await mails_of(pool, booking_id)
    return rows if rows and all(r["state"] == "sent" for r in rows) else None


async def test_smtp_outage_delays_mails_then_each_arrives_once(db, catcher):
    settings, pool = db
    before = await make_booking(pool)
    await confirm(pool, before)
    bookings = [await make_booking(pool) for _ in range(3)]
    ids = [b["booking_id"] for b in bookings]
    async with running_sender(pool, settings) as sender:
        await eventually(lambda: _sent(pool, before["booking_id"]), timeout=30)
        retried_before = mails_counted("retried")
        await catcher.stop_smtp()  # the mail server goes away mid-run
        for booking in bookings:
            await confirm(pool, booking)

        async def retried():
            rows = await pool.fetch(
                "SELECT state, attempts, last_error FROM notifications"
                " WHERE booking_id = ANY($1::bigint[])", ids)
            # tried and put back, each try uncounted: the server is away, not refusing
            return (mails_counted("retried") >= retried_before + 6 and all(
                r["state"] == "pending" and r["attempts"] == 0 and r["last_error"]
                for r in rows))

        await eventually(retried, timeout=30)
        assert not any(caught_for(catcher, i) for i in ids)
        await catcher.start_smtp("127.0.0.1", catcher.port)  # the server is back
        for booking_id in ids:
            await eventually(lambda b=booking_id: _sent(pool, b), timeout=30)
        await settled(sender)
    ids.append(before["booking_id"])
    counts = Counter(str(m.message["Message-ID"]) for i in ids for m in caught_for(catcher, i))
    assert len(counts) == 4 and set(counts.values()) == {1}


async def test_permanent_refusal_is_failed_not_retried_and_shown(db, catcher):
    settings, pool = db
    refused, fine = await make_booking(pool), await make_booking(pool)
    catcher.refuse.add(await email_of(pool, refused))
    await confirm(pool, refused)
    await confirm(pool, fine)
    failed_before = mails_counted("failed")
    async with running_sender(pool, settings) as sender:
        await eventually(lambda: _sent(pool, fine["booking_id"]), timeout=30)
        row = await eventually(lambda: _failed(pool, refused["booking_id"]), timeout=30)
        await settled(sender, rounds=5)
    assert row["attempts"] == 1 and "550" in row["last_error"]
    assert mails_counted("failed") == failed_before + 1  # a6pay_mails_total{outcome=failed}
    assert REGISTRY.get_sample_value("a6pay_mails_pending") == 0
    [again] = await mails_of(pool, refused["booking_id"])
    assert again["attempts"] == 1 and again["state"] == "failed"  # not retried
    assert caught_for(catcher, refused["booking_id"]) == []
    shown = await booking_command(settings, refused["booking_id"])  # `a6pay booking ID`
    [mail] = shown["notifications"]
    assert mail["kind"] == "payment_confirmed" and mail["state"] == "failed"
    assert "550" in mail["error"]


async def test_a_sender_dying_between_claim_and_send_loses_nothing(db, catcher):
    settings, pool = db
    booking = await make_booking(pool)
    await confirm(pool, booking)
    # The claim a sender commits before it talks SMTP; then it dies (nothing marks the row).
    [claimed] = await pool.fetch(CLAIM_DUE, 10, timedelta(seconds=2))
    assert claimed["booking_id"] == booking["booking_id"]
    [row] = await mails_of(pool, booking["booking_id"])
    assert row["state"] == "pending"  # still in the outbox, under a lease
    async with running_sender(pool, settings) as sender:
        await eventually(lambda: _sent(pool, booking["booking_id"]), timeout=30)
        await settled(sender)
    assert len(caught_for(catcher, booking["booking_id"])) == 1


async def test_a_mail_waits_for_the_consumer_to_give_way_then_goes(db, catcher):
    """Confirmations first: the sender asks before each mail (the notifier wires this to
    "no event in hand"), and sends only once it may."""
    settings, pool = db
    booking = await make_booking(pool)
    await confirm(pool, booking)
    asked, may_go = asyncio.Event(), asyncio.Event()

    async def give_way():
        asked.set()
        await may_go.wait()

    sending = asyncio.create_task(MailSender(pool, settings, give_way=give_way).send_due())
    await asyncio.wait_for(asked.wait(), 30)
    assert caught_for(catcher, booking["booking_id"]) == []
    assert [r["state"] for r in await mails_of(pool, booking["booking_id"])] == ["pending"]
    may_go.set()
    assert await asyncio.wait_for(sending, 30) == 1
    assert len(caught_for(catcher, booking["booking_id"])) == 1
    assert [r["state"] for r in await mails_of(pool, booking["booking_id"])] == ["sent"]


async def test_a_backlog_goes_out_several_mails_at_a_time_each_once(base_settings, catcher):
    """MAIL_CONCURRENCY senders, each with its own claimed batch and SMTP connection: to a
    server that takes 0.2 s per mail, twelve mails enqueued at once (one wake, and no poll
    comes in time) go out several at a time, as a sender whose claim comes back full
    brings in another (one sender would have one mail in transfer at any moment), and
    each arrives exactly once."""
    catcher.data_delay = 0.2
    async with own_database(
        base_settings, pass_signing_secret=SECRET, smtp_host="127.0.0.1",
        smtp_port=catcher.port, smtp_timeout_seconds=5, smtp_data_timeout_seconds=10,
        mail_poll_seconds=60, mail_lease_seconds=60, mail_batch_size=3, mail_concurrency=4,
    ) as (settings, pool):
        bookings = [await make_booking(pool) for _ in range(12)]
        ids = [b["booking_id"] for b in bookings]
        async with running_sender(pool, settings) as sender:
            await eventually(lambda: _true(sender.claims == 4), timeout=10)  # all idle
            for booking in bookings:
                await confirm(pool, booking)
            sender.wake()
            await eventually(lambda: _all_sent(pool, ids), timeout=30)
    assert catcher.most_at_once >= 2
    assert Counter(int(m.message["X-A6Pay-Booking"]) for m in catcher.mails) == Counter(ids)


async def _all_sent(pool, booking_ids) -> bool:
    return await pool.fetchval(
        "SELECT count(*) = $2 FROM notifications WHERE booking_id = ANY($1) AND state = 'sent'",
        booking_ids, len(booking_ids))


async def test_a_new_mail_wakes_one_sender_not_all(base_settings, catcher):
    """The notifier wakes the sender for each mail it enqueues: one idle sender claims it,
    the others sleep on (a claim per sender per confirmation would be wasted queries)."""
    async with own_database(
        base_settings, pass_signing_secret=SECRET, smtp_host="127.0.0.1",
        smtp_port=catcher.port, smtp_timeout_seconds=5, smtp_data_timeout_seconds=10,
        mail_poll_seconds=30, mail_lease_seconds=60, mail_concurrency=4,
    ) as (settings, pool):
        async with running_sender(pool, settings) as sender:
            await eventually(lambda: _true(sender.claims == 4), timeout=10)  # one each at start
            booking = await make_booking(pool)
            await confirm(pool, booking)
            sender.wake()
            await eventually(lambda: _sent(pool, booking["booking_id"]), timeout=10)
            await asyncio.sleep(0.5)
            assert sender.claims == 5


async def test_a_confirmation_mail_is_due_a_moment_after_its_confirmation(db, catcher):
    """Right after a webhook confirms a booking, verify-payment is usually drawing its
    passes for the browser: the confirmation mail is written due MAIL_PASSES_WAIT_SECONDS
    later, so the passes are drawn once; past that, a mail whose passes nobody drew draws
    them itself."""
    settings, pool = db
    drawn, undrawn = await make_booking(pool), await make_booking(pool)
    ids = [drawn["booking_id"], undrawn["booking_id"]]
    for booking in (drawn, undrawn):
        await confirm(pool, booking, mail_after=timedelta(seconds=30))
    async with pool.acquire() as conn:
        await issue_passes(conn, drawn["booking_id"], SECRET)  # what verify-payment does
    assert await MailSender(pool, settings).send_due() == 0  # neither is due yet
    await pool.execute("UPDATE notifications SET next_attempt_at = now()"
                       " WHERE booking_id = ANY($1::bigint[])", ids)  # the wait is over
    assert await MailSender(pool, settings).send_due() == 2
    [mail] = caught_for(catcher, undrawn["booking_id"])
    [with_drawn] = caught_for(catcher, drawn["booking_id"])
    assert len(mail.images) == len(with_drawn.images) > 0


async def set_email(pool, booking, email: str) -> None:
    await pool.execute("UPDATE customers SET email = $2 WHERE id = $1",
                       booking["customer_id"], email)


async def test_a_non_ascii_recipient_fails_alone_and_the_rest_go(db, catcher):
    settings, pool = db
    odd, fine = await make_booking(pool), await make_booking(pool)
    await set_email(pool, odd, "jösé@example.com")
    await confirm(pool, odd)
    await confirm(pool, fine)
    async with running_sender(pool, settings) as sender:
        # well before the claim's lease (60 s) would let a stalled round's rows go again
        await eventually(lambda: _sent(pool, fine["booking_id"]), timeout=10)
        row = await eventually(lambda: _failed(pool, odd["booking_id"]), timeout=10)
        await settled(sender)
    assert row["attempts"] == 1 and "address" in row["last_error"]
    assert len(caught_for(catcher, fine["booking_id"])) == 1


def retrying(settings, attempts: int, base: float):
    """MAIL_MAX_ATTEMPTS `attempts`, the back-off from `base` seconds to twice that."""
    return settings.model_copy(update={"mail_max_attempts": attempts,
                                       "mail_retry_base_seconds": base,
                                       "mail_retry_max_seconds": 2 * base})



async def test_transient_refusals_end_failed_after_mail_max_attempts(db, catcher, caplog):
    settings, pool = db
    settings = retrying(settings, attempts=3, base=0.05)
    busy = await make_booking(pool)
    catcher.defer.add(await email_of(pool, busy))
    await confirm(pool, busy)
    async with running_sender(pool, settings) as sender:
        row = await eventually(lambda: _failed(pool, busy["booking_id"]), timeout=30)
        await settled(sender)
    assert row["attempts"] == 3 and "450" in row["last_error"]
    [again] = await mails_of(pool, busy["booking_id"])
    assert again["attempts"] == 3  # not tried again
    alarms = [r for r in caplog.records
              if r.levelname == "ERROR" and "mail" in r.getMessage()]
    assert alarms


async def test_an_outage_does_not_use_up_the_attempts_of_a_refusal_after_it(db, catcher):
    """A mail tried more than MAIL_MAX_ATTEMPTS times while the server was away is still
    retried when the server, back, defers it (greylisting), and then sent."""
    settings, pool = db
    # a refusal is retried after 0.4-0.5 s: time to see it and lift the deferral
    settings = retrying(settings, attempts=2, base=0.5)
    booking = await make_booking(pool)
    email = await email_of(pool, booking)
    await catcher.stop_smtp()
    retried_before = mails_counted("retried")
    await confirm(pool, booking)
    async with running_sender(pool, settings) as sender:
        async def tried_often():
            return mails_counted("retried") >= retried_before + 4

        await eventually(tried_often, timeout=30)
        catcher.defer.add(email)
        await catcher.start_smtp("127.0.0.1", catcher.port)

        async def deferred():
            [row] = await mails_of(pool, booking["booking_id"])
            return row if row["last_error"] and "450" in row["last_error"] else None

        row = await eventually(deferred, timeout=30)
        assert row["state"] == "pending"  # not given up: the outage's tries did not count
        catcher.defer.discard(email)
        await eventually(lambda: _sent(pool, booking["booking_id"]), timeout=30)
        await settled(sender)
    assert len(caught_for(catcher, booking["booking_id"])) == 1


def self_signed(tmp_path) -> tuple[ssl.SSLContext, str]:
    """A certificate for 127.0.0.1 made here (openssl): the server's context, its CA file."""
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-keyout", str(key), "-out", str(cert), "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True, capture_output=True, timeout=60)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    return context, str(cert)


async def test_mail_is_upgraded_to_tls_whenever_the_server_offers_it(db, tmp_path):
    settings, pool = db
    context, ca_file = self_signed(tmp_path)
    tls_catcher = MailCatcher()
    port = free_port()
    await tls_catcher.start_smtp("127.0.0.1", port, tls_context=context)
    try:
        settings = settings.model_copy(update={"smtp_port": port, "smtp_ca_file": ca_file})
        assert settings.smtp_tls.value == "auto"  # the default: nothing set
        booking = await make_booking(pool)
        await confirm(pool, booking)
        async with running_sender(pool, settings):
            await eventually(lambda: _sent(pool, booking["booking_id"]), timeout=30)
        assert len(caught_for(tls_catcher, booking["booking_id"])) == 1
        assert tls_catcher.tls_sessions >= 1
    finally:
        await tls_catcher.stop()


async def test_required_tls_sends_nothing_to_a_server_without_it(db, catcher):
    settings, pool = db
    settings = settings.model_copy(update={"smtp_starttls": SmtpTls.REQUIRED})
    booking = await make_booking(pool)
    retried_before = mails_counted("retried")
    await confirm(pool, booking)
    async with running_sender(pool, settings) as sender:

        async def retried():
            [row] = await mails_of(pool, booking["booking_id"])
            return row if mails_counted("retried") >= retried_before + 2 else None

        row = await eventually(retried, timeout=30)
        await settled(sender)
    # waits for an operator to fix the settings: never given up on
    assert row["state"] == "pending" and "TLS" in row["last_error"] and row["attempts"] == 0
    assert caught_for(catcher, booking["booking_id"]) == []


async def test_a_confirmation_sent_after_a_full_refund_carries_no_passes(db, catcher):
    settings, pool = db
    booking = await make_booking(pool, 250_000)
    await confirm(pool, booking)
    async with pool.acquire() as conn:
        payment_id = await conn.fetchval(
            "SELECT id FROM payments WHERE booking_id = $1", booking["booking_id"])
        refund_id = await conn.fetchval(
            "INSERT INTO refunds (payment_id, booking_id, amount_paise, cause, status,"
            " next_check_at) VALUES ($1, $2, 250000, 'admin', 'processed', NULL) RETURNING id",
            payment_id, booking["booking_id"])
        event = RefundProcessed(refund_id=refund_id, booking_id=booking["booking_id"],
                                customer_id=booking["customer_id"], amount_paise=250_000,
                                source="webhook")
        assert await apply_event(conn, event, Envelope.wrap(event, "t").id, pass_secret=SECRET)
        assert await conn.fetchval(  # the full refund revoked both passes
            "SELECT count(*) FROM passes WHERE booking_id = $1 AND revoked_at IS NOT NULL",
            booking["booking_id"]) == 2
    async with running_sender(pool, settings) as sender:
        await eventually(lambda: _sent(pool, booking["booking_id"]), timeout=30)
        await settled(sender)
    mails = {m.message["X-A6Pay-Kind"]: m.message
             for m in caught_for(catcher, booking["booking_id"])}
    assert set(mails) == {"payment_confirmed", "refund_processed"}
    confirmation = mails["payment_confirmed"]
    assert not list(confirmation.iter_attachments())
    assert not [p for p in confirmation.walk() if p["Content-ID"]]
    assert "pass" not in confirmation.get_body(("plain",)).get_content().lower()
