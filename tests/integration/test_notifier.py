"""The notifier against real PostgreSQL and RabbitMQ: effects once, poison to the DLQ,
replay, a broker connection drop and a database outage that dead-letters nothing."""

from __future__ import annotations

import asyncio
import json
import subprocess
import uuid
from urllib.parse import unquote, urlsplit, urlunsplit

import aio_pika
import aiohttp
import pytest

from notifier.dlq import list_dead_letters, replay_dead_letters
from notifier.handlers import BookingNotFound, UnbackedCapture
from notifier.report import booking_report
from shared.events import Envelope, OrderCreated, PaymentFailed
from shared.messaging import queue_name
from shared.passes import verify_pass_token
from testkit.factories import make_booking
from testkit.infra import eventually, free_port
from tests.support.notifier import Bus, Notifier, apply_event
from tests.support.notifier_events import captured, recorded_capture, rewrap, state
from tests.support.pass_tokens import expected_passes

EXCHANGE = "a6pay.events.notifiertest"
DELIVERY_LIMIT = 2


# ---------------------------------------------------------------- fixtures and helpers


@pytest.fixture(scope="module")
def settings(base_settings):
    return base_settings.model_copy(
        update={"amqp_exchange": EXCHANGE, "notifier_delivery_limit": DELIVERY_LIMIT}
    )


@pytest.fixture(scope="module")
async def notifier(settings):
    running = await Notifier(settings).start()
    yield running
    await running.stop()


@pytest.fixture
async def bus(settings, notifier):
    async with Bus(settings) as bus:
        yield bus


def failed(booking: dict, payment_id: str | None = "pay_ItgFailed0001") -> Envelope:
    return Envelope.wrap(
        PaymentFailed(
            booking_id=booking["booking_id"],
            customer_id=booking["customer_id"],
            order_id=f"order_ItgF{booking['booking_id']:09d}",
            payment_id=payment_id,
            error_code="BAD_REQUEST_ERROR",
            source="webhook",
        ),
        "test",
    )


async def recorded_failure(pool, booking: dict, payment_id: str = "pay_ItgFailed0001") -> None:
    """The failed attempt our services would have recorded (on an order of its own)."""
    await pool.execute(
        "INSERT INTO payments (booking_id, customer_id, razorpay_order_id, receipt,"
        " amount_paise, status, razorpay_payment_id, failure_reason)"
        " VALUES ($1,$2,$3,'r',$4,'failed',$5,'Card declined')",
        booking["booking_id"], booking["customer_id"], f"order_ItgF{booking['booking_id']:09d}",
        booking["amount_paise"], payment_id)


async def dead_letter(settings, message_id: str) -> dict | None:
    for entry in await list_dead_letters(settings, limit=1000):
        if entry["message_id"] == message_id:
            return entry
    return None


async def apply(pool, envelope: Envelope, secret: str = "itg-secret") -> bool:
    async with pool.acquire() as conn:
        return await apply_event(conn, envelope.event(), envelope.id, pass_secret=secret)


# ---------------------------------------------------------------- handlers, no broker


async def test_handler_capture_confirms_and_issues_the_signed_tokens(pool):
    booking = await make_booking(pool)
    envelope = await recorded_capture(pool, booking)
    assert await apply(pool, envelope) is True
    assert await apply(pool, envelope) is False  # inbox: same event id is a no-op
    assert await apply(pool, rewrap(envelope)) is True  # new id, same fact: constraints hold
    now = await state(pool, booking["booking_id"])
    assert now["status"] == "confirmed"
    expected = expected_passes(booking["booking_id"], "itg-secret")
    # the images are drawn when first needed (tests/integration/test_pass_store.py)
    assert {p["kind"]: (p["token"], p["qr_data_url"]) for p in now["passes"]} == {
        kind: (token, None) for kind, (token, _) in expected.items()}
    [note] = now["notifications"]
    # A mail waiting in the outbox for the sender (tests/integration/test_mail.py sends it).
    assert note["recipient"].endswith("@example.com") and note["state"] == "pending"
    assert note["details"] == {"amount_paise": booking["amount_paise"]}
    assert "pay_" not in json.dumps(note["details"])


async def test_racing_duplicates_apply_once(pool):
    booking = await make_booking(pool)
    first = await recorded_capture(pool, booking)
    results = await asyncio.gather(
        *(apply(pool, e) for e in [first] * 4 + [rewrap(first) for _ in range(4)])
    )
    assert results.count(True) == 5  # one per distinct event id, effects still single
    now = await state(pool, booking["booking_id"])
    assert len(now["passes"]) == 2 and len(now["notifications"]) == 1


async def test_handler_failure_notifies_once_per_payment_and_not_after_confirmation(pool):
    booking = await make_booking(pool)
    await recorded_failure(pool, booking, "pay_ItgFailA00001")
    assert await apply(pool, failed(booking, "pay_ItgFailA00001"))
    assert await apply(pool, failed(booking, "pay_ItgFailA00001"))  # other id, same payment
    assert await apply(pool, failed(booking, None))  # keyed by the attempt on record
    now = await state(pool, booking["booking_id"])
    assert now["status"] == "pending" and now["passes"] == []
    assert [(n["kind"], n["details"]) for n in now["notifications"]] == [
        ("payment_failed", {"reason": "Card declined"})]
    await apply(pool, await recorded_capture(pool, booking))
    await apply(pool, failed(booking, "pay_ItgLateFail001"))  # an old attempt, reported late
    kinds = [n["kind"] for n in (await state(pool, booking["booking_id"]))["notifications"]]
    assert kinds == ["payment_failed", "payment_confirmed"]


async def test_handler_order_created_only_inboxes(pool):
    booking = await make_booking(pool)
    envelope = Envelope.wrap(
        OrderCreated(
            booking_id=booking["booking_id"],
            customer_id=booking["customer_id"],
            order_id=f"order_ItgOc{booking['booking_id']:09d}",
            amount_paise=booking["amount_paise"],
        ),
        "t",
    )
    await pool.execute(  # the order our services made, and recorded
        "INSERT INTO payments (booking_id, customer_id, razorpay_order_id, receipt,"
        " amount_paise) VALUES ($1, $2, $3, 'r', $4)", booking["booking_id"],
        booking["customer_id"], envelope.data["order_id"], booking["amount_paise"])
    assert await apply(pool, envelope) is True
    assert await apply(pool, envelope) is False
    now = await state(pool, booking["booking_id"])
    assert now["status"] == "pending" and not now["passes"] and not now["notifications"]


async def test_handler_cancelled_booking_gets_no_passes(pool):
    booking = await make_booking(pool)
    async with pool.acquire() as conn:
        await conn.execute(
            "UPDATE bookings SET status='cancelled' WHERE id=$1", booking["booking_id"]
        )
    await apply(pool, await recorded_capture(pool, booking))
    now = await state(pool, booking["booking_id"])
    assert now["status"] == "cancelled" and not now["passes"] and not now["notifications"]


async def test_handler_unknown_booking_raises_and_leaves_no_inbox_row(pool):
    envelope = captured({"booking_id": 10**15, "customer_id": 1, "amount_paise": 100})
    with pytest.raises(BookingNotFound):
        await apply(pool, envelope)
    async with pool.acquire() as conn:
        assert not await conn.fetchval("SELECT 1 FROM inbox WHERE event_id=$1", envelope.id)


async def test_handler_refuses_a_capture_no_payment_stands_behind(pool):
    booking = await make_booking(pool)
    forged = captured(booking)  # nothing recorded in payments
    with pytest.raises(UnbackedCapture):
        await apply(pool, forged)
    real = await recorded_capture(pool, booking)
    wrong_amount = Envelope.wrap(real.event().model_copy(update={"amount_paise": 1}), "t")
    other_order = Envelope.wrap(
        real.event().model_copy(update={"order_id": "order_ItgOther00001"}), "t")
    for lie in (wrong_amount, other_order):
        with pytest.raises(UnbackedCapture):
            await apply(pool, lie)
    now = await state(pool, booking["booking_id"])
    assert now["status"] == "pending" and not now["passes"] and not now["notifications"]
    async with pool.acquire() as conn:  # refused events leave no inbox row behind
        ids = [forged.id, wrong_amount.id, other_order.id]
        assert not await conn.fetchval("SELECT count(*) FROM inbox WHERE event_id = ANY($1)", ids)
    assert await apply(pool, real) is True
    assert (await state(pool, booking["booking_id"]))["status"] == "confirmed"


async def test_a_cancellation_committing_mid_confirmation_wins(pool):
    """The notifier's conditional UPDATE waits for a cancellation in flight and then sees
    it, so no passes and no confirmation go out for a cancelled booking."""
    booking = await make_booking(pool)
    envelope = await recorded_capture(pool, booking)
    async with pool.acquire() as cancelling:
        transaction = cancelling.transaction()
        await transaction.start()
        await cancelling.execute(
            "UPDATE bookings SET status = 'cancelled' WHERE id = $1", booking["booking_id"])
        confirming = asyncio.create_task(apply(pool, envelope))
        await asyncio.sleep(1)
        assert not confirming.done()  # waits for the cancellation's row lock
        await transaction.commit()
    assert await asyncio.wait_for(confirming, 15) is True
    now = await state(pool, booking["booking_id"])
    assert now["status"] == "cancelled" and not now["passes"] and not now["notifications"]


async def test_booking_report(pool):
    assert await booking_report(pool, 10**15) is None
    booking = await make_booking(pool)
    await apply(pool, await recorded_capture(pool, booking))
    report = await booking_report(pool, booking["booking_id"])
    assert report["status"] == "confirmed" and report["payment_status"] == "captured"
    assert report["amount"] == 1500.0
    assert [p["kind"] for p in report["passes"]] == ["collection", "return"]
    assert verify_pass_token(report["passes"][0]["token"], "itg-secret")
    assert [(n["kind"], n["state"]) for n in report["notifications"]] == [
        ("payment_confirmed", "pending")]
    text = json.dumps(report)
    assert "pay_" not in text and "order_" not in text


# ---------------------------------------------------------------- through RabbitMQ


async def test_healthz(notifier):
    async with aiohttp.ClientSession() as http:
        async with http.get(f"http://127.0.0.1:{notifier.port}/healthz") as response:
            assert response.status == 200


async def test_capture_delivered_many_times_applies_once(pool, bus, notifier, settings):
    booking = await make_booking(pool)
    envelope = await recorded_capture(pool, booking)
    for _ in range(3):
        await bus.publish(envelope)
    second = rewrap(envelope)
    await bus.publish(second)
    await notifier.settled(envelope.id, "applied")
    await notifier.settled(envelope.id, "duplicate", times=2)
    await notifier.settled(second.id, "applied")
    now = await state(pool, booking["booking_id"])
    assert now["status"] == "confirmed"
    assert sorted(p["kind"] for p in now["passes"]) == ["collection", "return"]
    assert [n["kind"] for n in now["notifications"]] == ["payment_confirmed"]
    for p in now["passes"]:  # signed with the configured secret
        assert verify_pass_token(p["token"], settings.pass_signing_secret) == (
            booking["booking_id"],
            p["kind"],
        )


async def test_failure_delivered_notifies_once_and_booking_stays_pending(pool, bus, notifier):
    booking = await make_booking(pool)
    await recorded_failure(pool, booking)
    envelope = failed(booking)
    await bus.publish(envelope)
    await bus.publish(envelope)
    await notifier.settled(envelope.id, "applied")
    await notifier.settled(envelope.id, "duplicate")
    now = await state(pool, booking["booking_id"])
    assert now["status"] == "pending" and not now["passes"]
    assert [n["kind"] for n in now["notifications"]] == ["payment_failed"]


async def test_poison_is_dead_lettered_and_the_queue_keeps_flowing(pool, bus, notifier, settings):
    poison_ids = {
        name: f"poison-{name}-{uuid.uuid4().hex[:8]}" for name in ("garbage", "unknown", "invalid")
    }
    await bus.publish(
        body=b"\x00 not json pay_ItgPoison00001",
        routing_key="payment.captured",
        message_id=poison_ids["garbage"],
    )
    unknown = Envelope(type="payment.refunded", producer="t", data={"booking_id": 1})
    await bus.publish(unknown, routing_key="order.created", message_id=poison_ids["unknown"])
    invalid = Envelope(type="payment.captured", producer="t", data={"booking_id": "x"})
    await bus.publish(invalid, message_id=poison_ids["invalid"])
    booking = await make_booking(pool)
    good = await recorded_capture(pool, booking)
    await bus.publish(good)
    await notifier.settled(good.id, "applied")
    for name, message_id in poison_ids.items():
        entry = await eventually(lambda m=message_id: dead_letter(settings, m))
        assert entry["reason"] == "rejected" and entry["death_count"] == 1, name
    garbage = await dead_letter(settings, poison_ids["garbage"])
    assert garbage["routing_key"] == "payment.captured"
    assert "pay_ItgPoison00001" not in garbage["body"]  # scrubbed in the listing


async def test_a_forged_capture_published_to_the_exchange_is_refused_and_dead_lettered(
    pool, bus, notifier, settings, caplog
):
    """Anyone who reaches the broker can publish; nobody can confirm an unpaid booking."""
    booking = await make_booking(pool)
    forged = captured(booking)
    await bus.publish(forged)
    await notifier.settled(forged.id, "refused")
    entry = await eventually(lambda: dead_letter(settings, str(forged.id)))
    assert entry["reason"] == "rejected" and entry["routing_key"] == "payment.captured"
    assert notifier.count(forged.id, "requeued") == 0  # refused at once, never retried
    now = await state(pool, booking["booking_id"])
    assert now["status"] == "pending" and not now["passes"] and not now["notifications"]
    alarms = [r for r in caplog.records if getattr(r, "ctx", {}).get("alarm")
              == "unbacked_capture" and r.ctx.get("event_id") == str(forged.id)]
    assert alarms and alarms[0].levelname == "ERROR"


async def test_failing_handler_is_dead_lettered_then_replayed_after_the_fix(
    pool, bus, notifier, settings
):
    template = await make_booking(pool)
    missing_id = 10**12 + template["booking_id"]
    envelope = captured({**template, "booking_id": missing_id})
    await bus.publish(envelope)
    entry = await eventually(lambda: dead_letter(settings, str(envelope.id)), timeout=20)
    assert notifier.count(envelope.id, "requeued") == DELIVERY_LIMIT + 1
    assert entry["type"] == "payment.captured" and entry["routing_key"] == "payment.captured"
    assert entry["reason"] == "delivery_limit"  # RabbitMQ 3.10 quorum queue
    assert len(entry["body"]) <= 200 and envelope.data["payment_id"] not in entry["body"]

    garbage_id = f"poison-replayed-{uuid.uuid4().hex[:8]}"
    await bus.publish(body=b"still garbage", routing_key="payment.failed", message_id=garbage_id)
    await eventually(lambda: dead_letter(settings, garbage_id))

    async with pool.acquire() as conn:  # the fix: the booking the event names now exists
        await conn.execute(
            "INSERT INTO bookings (id, customer_id, car_id, amount_paise, start_date, end_date)"
            " SELECT $1, customer_id, car_id, amount_paise, start_date, end_date"
            " FROM bookings WHERE id = $2",
            missing_id,
            template["booking_id"],
        )
    await recorded_capture(pool, {**template, "booking_id": missing_id})
    assert await replay_dead_letters(settings) >= 2
    await notifier.settled(envelope.id, "applied")
    assert (await state(pool, missing_id))["status"] == "confirmed"
    assert await dead_letter(settings, str(envelope.id)) is None
    again = await eventually(lambda: dead_letter(settings, garbage_id))  # still poison
    assert again["death_count"] == 2  # x-death history survives the replay
    assert await replay_dead_letters(settings, limit=0) == 0


async def test_dlq_ops_before_any_notifier_ran(base_settings):
    never = base_settings.model_copy(update={"amqp_exchange": EXCHANGE + ".never"})
    assert await list_dead_letters(never) == []
    assert await replay_dead_letters(never) == 0


async def test_consumer_survives_the_broker_dropping_its_connection(pool, bus, notifier):
    closed = await asyncio.to_thread(_close_notifier_connections, notifier.settings)
    assert closed >= 1
    booking = await make_booking(pool)
    envelope = await recorded_capture(pool, booking)
    await bus.publish(envelope)  # queued while the notifier reconnects
    await notifier.settled(envelope.id, "applied", timeout=30)
    assert (await state(pool, booking["booking_id"]))["status"] == "confirmed"


def _close_notifier_connections(settings) -> int:
    """Has the broker close the notifier's connections in this run's vhost (a restart as
    the client sees it, without restarting the RabbitMQ other runs share)."""
    vhost = unquote(urlsplit(settings.amqp_url).path.lstrip("/"))
    listing = subprocess.run(
        [
            "rabbitmqctl",
            "-q",
            "list_connections",
            "pid",
            "vhost",
            "client_properties",
            "--no-table-headers",
        ],
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    )
    closed = 0
    for line in listing.stdout.splitlines():
        pid, conn_vhost, properties = (line.split("\t", 2) + ["", ""])[:3]
        if conn_vhost == vhost and '{"connection_name","notifier@' in properties:
            subprocess.run(
                ["rabbitmqctl", "-q", "close_connection", pid, "test"],
                check=True,
                capture_output=True,
                timeout=60,
            )
            closed += 1
    return closed


# ---------------------------------------------------------------- database outage


class TcpProxy:
    """Stands between the notifier and PostgreSQL so the test can take the database away
    for this notifier alone (the server itself is shared with everything else)."""

    def __init__(self, target_port: int):
        self.target_port = target_port
        self.port = free_port()
        self.server: asyncio.Server | None = None
        self.writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)

    async def stop(self) -> None:
        self.server.close()
        for writer in self.writers:
            writer.close()
        self.writers.clear()
        await self.server.wait_closed()

    async def _serve(self, reader, writer) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            writer.close()
            return
        self.writers |= {writer, up_writer}
        await asyncio.gather(
            self._pipe(reader, up_writer), self._pipe(up_reader, writer), return_exceptions=True
        )

    @staticmethod
    async def _pipe(reader, writer) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        finally:
            writer.close()


async def test_database_outage_dead_letters_nothing(pool, base_settings):
    parts = urlsplit(base_settings.database_url)
    proxy = TcpProxy(parts.port or 5432)  # a socket URL names no port: the same server
    await proxy.start()
    settings = base_settings.model_copy(
        update={
            "amqp_exchange": EXCHANGE + ".dbdown",
            "notifier_delivery_limit": DELIVERY_LIMIT,
            "database_url": urlunsplit(
                parts._replace(netloc=f"{parts.username}@127.0.0.1:{proxy.port}", query="")
            ),
        }
    )
    running = await Notifier(settings).start()
    try:
        booking = await make_booking(pool)
        envelope = await recorded_capture(pool, booking)
        await proxy.stop()  # the database is gone for this notifier
        async with Bus(settings) as bus:
            await bus.publish(envelope)
            await asyncio.sleep(4)  # > DELIVERY_LIMIT+1 quick redeliveries if it requeued
            assert running.outcomes == []  # held unacked, retrying: nothing requeued
            assert await dead_letter(settings, str(envelope.id)) is None
            await proxy.start()  # and back, on the same port
            await running.settled(envelope.id, "applied", timeout=20)
        assert (await state(pool, booking["booking_id"]))["status"] == "confirmed"
        assert await dead_letter(settings, str(envelope.id)) is None
        assert running.outcomes == [("applied", str(envelope.id))]
    finally:
        await running.stop()
        if proxy.server is not None and proxy.server.is_serving():
            await proxy.stop()


# ---------------------------------------------------------------- a database that cannot work


async def _inbox_trigger(pool, name: str, event_ids, body: str) -> None:
    """Runs `body` (plpgsql) before each inbox row of these events is written: the first
    thing the notifier writes for any event."""
    ids = ",".join(str(event_id) for event_id in event_ids)
    await pool.execute(
        f"CREATE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN"
        f" IF NEW.event_id = ANY('{{{ids}}}'::uuid[]) THEN {body} END IF;"
        f" RETURN NEW; END $$")
    await pool.execute(
        f"CREATE TRIGGER {name} BEFORE INSERT ON inbox FOR EACH ROW EXECUTE FUNCTION {name}()")


async def _drop_inbox_trigger(pool, name: str) -> None:
    await pool.execute(f"DROP TRIGGER IF EXISTS {name} ON inbox")
    await pool.execute(f"DROP FUNCTION IF EXISTS {name}()")


async def test_a_database_out_of_disk_for_a_while_dead_letters_nothing(pool, base_settings):
    """The server answers, but cannot write (disk full; so too out of memory, an I/O error,
    read-only, a deadlock): the events wait in hand, retried, spending no delivery, and
    take effect once it can."""
    settings = base_settings.model_copy(update={
        "amqp_exchange": EXCHANGE + ".diskfull", "notifier_delivery_limit": DELIVERY_LIMIT})
    bookings = [await make_booking(pool) for _ in range(3)]
    envelopes = [await recorded_capture(pool, booking) for booking in bookings]
    unpaid = await make_booking(pool)
    await recorded_failure(pool, unpaid)
    envelopes.append(failed(unpaid))
    trigger = f"disk_full_{uuid.uuid4().hex[:8]}"
    running = await Notifier(settings).start()
    try:
        await _inbox_trigger(pool, trigger, [e.id for e in envelopes],
                             "RAISE EXCEPTION 'could not extend file' USING ERRCODE = '53100';")
        async with Bus(settings) as bus:
            for envelope in envelopes:
                await bus.publish(envelope)
            await asyncio.sleep(4)  # > DELIVERY_LIMIT+1 quick redeliveries if it requeued
            assert running.outcomes == []  # held unacked, retrying: nothing requeued
            await _drop_inbox_trigger(pool, trigger)
            for envelope in envelopes:
                await running.settled(envelope.id, "applied", timeout=20)
        for booking in bookings:
            assert (await state(pool, booking["booking_id"]))["status"] == "confirmed"
        notes = (await state(pool, unpaid["booking_id"]))["notifications"]
        assert [n["kind"] for n in notes] == ["payment_failed"]
        assert sorted(running.outcomes) == sorted(("applied", str(e.id)) for e in envelopes)
        for envelope in envelopes:
            assert await dead_letter(settings, str(envelope.id)) is None
    finally:
        await _drop_inbox_trigger(pool, trigger)
        await running.stop()


async def test_a_stopping_notifier_takes_no_new_message(pool, base_settings):
    """RabbitMQ counts a message a closing channel returns as a delivery: a notifier that
    is stopping cancels its consumer and finishes what it holds, so what it leaves in the
    queue has spent no delivery, but for one the broker may have sent as the cancel crossed
    it; without the cancel, every message prefetched at close spends one."""
    prefetch = 8
    settings = base_settings.model_copy(update={
        "amqp_exchange": EXCHANGE + ".stopping", "notifier_prefetch": prefetch})
    bookings = [await make_booking(pool) for _ in range(60)]
    envelopes = [await recorded_capture(pool, booking) for booking in bookings]
    trigger = f"slow_inbox_{uuid.uuid4().hex[:8]}"
    await _inbox_trigger(pool, trigger, [e.id for e in envelopes], "PERFORM pg_sleep(0.05);")
    running = await Notifier(settings).start()
    try:
        async with Bus(settings) as bus:
            for envelope in envelopes:
                await bus.publish(envelope)
        await running.settled(envelopes[0].id, "applied")
    finally:
        await running.stop()
        await _drop_inbox_trigger(pool, trigger)
    left = await _delivery_counts(settings)
    assert 0 < len(left) < len(envelopes)
    spent = sorted(count for count in left.values() if count)
    assert spent in ([], [1]), left


async def _delivery_counts(settings) -> dict[str, int]:
    """message id -> deliveries spent, for each message left in the notifier's queue."""
    connection = await aio_pika.connect(settings.amqp_url, timeout=10)
    async with connection:
        channel = await connection.channel()
        queue = await channel.get_queue(queue_name(settings, "notifier"))
        counts = {}
        while (message := await queue.get(no_ack=False, fail=False)) is not None:
            counts[message.message_id] = (message.headers or {}).get("x-delivery-count", 0)
        return counts
