"""The consumer's failure policy, with a hand-written fake message and fake `apply`."""

from __future__ import annotations

import asyncio
import logging
import uuid

import asyncpg
import pytest

from notifier.consumer import MessageHandler, parse
from shared.events import Envelope, OrderCreated, PaymentCaptured

PAYMENT_ID = "pay_UnitSecretPay123"


class FakeChannel:
    is_closed = False


class FakeMessage:
    """The slice of aio-pika's IncomingMessage the consumer uses; records what it did."""

    def __init__(self, body: bytes, message_id: str | None = None, headers=None):
        self.body = body
        self.message_id = message_id
        self.headers = headers or {}
        self.channel = FakeChannel()
        self.settled: list[tuple[str, bool | None]] = []

    async def ack(self):
        self.settled.append(("ack", None))

    async def nack(self, requeue: bool = True):
        self.settled.append(("nack", requeue))

    async def reject(self, requeue: bool = False):
        self.settled.append(("reject", requeue))


class FakeApply:
    """Raises the queued exceptions one by one, then returns `result`."""

    def __init__(self, *failures: BaseException, result: bool = True):
        self.failures = list(failures)
        self.result = result
        self.calls: list[tuple[object, uuid.UUID]] = []

    async def __call__(self, event, event_id):
        self.calls.append((event, event_id))
        if self.failures:
            raise self.failures.pop(0)
        return self.result


def captured_envelope() -> Envelope:
    event = PaymentCaptured(
        booking_id=7,
        customer_id=3,
        order_id="order_UnitOrder123",
        payment_id=PAYMENT_ID,
        amount_paise=150_000,
        source="webhook",
    )
    return Envelope.wrap(event, "test")


def message_for(envelope: Envelope) -> FakeMessage:
    return FakeMessage(envelope.model_dump_json().encode(), str(envelope.id))


def handler_with(apply: FakeApply) -> tuple[MessageHandler, list]:
    handler = MessageHandler(apply, retry_initial=0.01, retry_max=0.04, requeue_delay=0)
    outcomes: list = []
    handler.listeners.append(lambda outcome, event_id: outcomes.append(outcome))
    return handler, outcomes


async def test_good_message_is_acked_after_apply():
    envelope = captured_envelope()
    apply = FakeApply()
    handler, outcomes = handler_with(apply)
    message = message_for(envelope)
    await handler(message)
    assert message.settled == [("ack", None)]
    assert outcomes == ["applied"]
    event, event_id = apply.calls[0]
    assert isinstance(event, PaymentCaptured) and event_id == envelope.id


async def test_duplicate_is_acked():
    handler, outcomes = handler_with(FakeApply(result=False))
    message = message_for(captured_envelope())
    await handler(message)
    assert message.settled == [("ack", None)] and outcomes == ["duplicate"]


def _unknown_type() -> bytes:
    return Envelope(type="payment.refunded", producer="t", data={"x": 1}).model_dump_json().encode()


def _invalid_data() -> bytes:
    return (
        Envelope(type="payment.captured", producer="t", data={"booking_id": "seven"})
        .model_dump_json()
        .encode()
    )


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"not json at all",
        b"\xff\xfe\x00garbage",
        b"[1, 2, 3]",
        b'{"type": "payment.captured"}',  # not an envelope
        b'{"id": "nope", "type": "order.created", "producer": "x", "data": {}}',
        b"[" * 100_000,  # deeply nested
    ],
    ids=["empty", "text", "binary", "array", "partial", "bad-id", "nested"],
)
async def test_unparseable_message_is_rejected_without_requeue(body):
    apply = FakeApply()
    handler, outcomes = handler_with(apply)
    message = FakeMessage(body, "m-1")
    await handler(message)
    assert message.settled == [("reject", False)]
    assert outcomes == ["dead-lettered"] and apply.calls == []


@pytest.mark.parametrize("body", [_unknown_type(), _invalid_data()], ids=["unknown", "invalid"])
def test_unknown_type_and_invalid_data_are_poison(body):
    assert parse(body) is None


def test_parse_gives_the_typed_event():
    envelope = Envelope.wrap(
        OrderCreated(booking_id=1, customer_id=2, order_id="order_X", amount_paise=100), "t"
    )
    parsed_envelope, event = parse(envelope.model_dump_json().encode())
    assert parsed_envelope.id == envelope.id and isinstance(event, OrderCreated)


@pytest.mark.parametrize(
    "transient",
    [
        OSError("connection refused"),
        ConnectionRefusedError(),
        TimeoutError(),
        asyncpg.PostgresConnectionError("gone"),
        asyncpg.CannotConnectNowError("starting up"),
        asyncpg.AdminShutdownError("terminating connection"),
        asyncpg.InterfaceError("pool is closing"),
        asyncpg.TooManyConnectionsError("too many"),
        asyncpg.exceptions.DiskFullError("could not extend file"),
        asyncpg.exceptions.OutOfMemoryError("out of memory"),
        asyncpg.exceptions.PostgresIOError("could not read block"),
        asyncpg.exceptions.ReadOnlySQLTransactionError("read-only transaction"),
        asyncpg.exceptions.SerializationError("could not serialize access"),
        asyncpg.exceptions.DeadlockDetectedError("deadlock detected"),
    ],
    ids=lambda e: type(e).__name__,
)
async def test_database_outage_is_retried_in_process_never_nacked(transient):
    apply = FakeApply(transient, transient, transient, transient)
    handler, outcomes = handler_with(apply)
    message = message_for(captured_envelope())
    await handler(message)
    assert len(apply.calls) == 5  # four failures, then success: no delivery burnt
    assert message.settled == [("ack", None)] and outcomes == ["applied"]


async def test_retry_backoff_doubles_up_to_the_cap(monkeypatch):
    delays: list[float] = []
    real_sleep = asyncio.sleep

    async def fake_sleep(seconds):
        delays.append(seconds)
        await real_sleep(0)

    monkeypatch.setattr("notifier.consumer.asyncio.sleep", fake_sleep)
    apply = FakeApply(*[OSError()] * 6)
    handler = MessageHandler(apply)  # production defaults: 0.5 s doubling to 5 s
    message = message_for(captured_envelope())
    await handler(message)
    assert delays == [0.5, 1.0, 2.0, 4.0, 5.0, 5.0]
    assert message.settled == [("ack", None)]


async def test_retry_stops_when_the_channel_is_gone():
    apply = FakeApply(*[OSError()] * 50)
    handler, outcomes = handler_with(apply)
    message = message_for(captured_envelope())
    message.channel.is_closed = True  # the broker will redeliver to a new channel
    await handler(message)
    assert message.settled == [] and outcomes == ["abandoned"]


@pytest.mark.parametrize(
    "error",
    [RuntimeError("boom"), asyncpg.ForeignKeyViolationError("fk"), LookupError(7)],
    ids=lambda e: type(e).__name__,
)
async def test_other_handler_errors_are_rejected_with_requeue(error):
    """A reject, which RabbitMQ counts towards the delivery limit (4.3 no longer counts a
    nack), so a message that always fails still ends in the dead-letter queue."""
    handler, outcomes = handler_with(FakeApply(error))
    message = message_for(captured_envelope())
    await handler(message)
    assert message.settled == [("reject", True)] and outcomes == ["requeued"]


async def test_a_lost_ack_does_not_raise():
    class ClosedAck(FakeMessage):
        async def ack(self):
            raise ConnectionError("channel closed")

    handler, outcomes = handler_with(FakeApply())
    message = ClosedAck(captured_envelope().model_dump_json().encode())
    await handler(message)
    assert outcomes == ["applied"]


async def test_logs_never_carry_the_body_or_payment_ids(caplog):
    caplog.set_level(logging.DEBUG)
    handler, _ = handler_with(FakeApply(RuntimeError(PAYMENT_ID), OSError(PAYMENT_ID)))
    await handler(message_for(captured_envelope()))
    await handler(FakeMessage(b"garbage " + PAYMENT_ID.encode(), PAYMENT_ID))
    text = " ".join(f"{r.getMessage()} {getattr(r, 'ctx', '')}" for r in caplog.records)
    assert "requeued" in text and "dead-lettered" in text
    assert PAYMENT_ID not in text and "order_UnitOrder123" not in text


async def test_drain_cancels_what_does_not_finish():
    gate = asyncio.Event()

    async def stuck_apply(event, event_id):
        await gate.wait()
        return True

    handler = MessageHandler(stuck_apply)
    message = message_for(captured_envelope())
    task = asyncio.create_task(handler(message))
    await asyncio.sleep(0)
    assert handler.inflight == {task}
    await handler.drain(grace_seconds=0.05)
    assert task.cancelled() and message.settled == []


class BlockedApply:
    """Holds every event until `release` is set: a consumer with an event in hand."""

    def __init__(self):
        self.release = asyncio.Event()
        self.started = asyncio.Event()

    async def __call__(self, event, event_id):
        self.started.set()
        await self.release.wait()
        return True


async def test_until_idle_waits_for_the_events_in_hand_and_no_longer():
    apply = BlockedApply()
    handler, outcomes = handler_with(apply)
    await handler.until_idle(at_most=5)  # nothing in hand: at once
    working = asyncio.create_task(handler(message_for(captured_envelope())))
    await apply.started.wait()
    waiting = asyncio.create_task(handler.until_idle(at_most=60))
    await asyncio.sleep(0)
    assert not waiting.done()  # the mail sender keeps waiting while an event is in hand
    await handler.until_idle(at_most=0.01)  # ...but never past its limit
    apply.release.set()
    await asyncio.wait_for(waiting, 5)  # the event is settled: the wait ends
    await working
    assert outcomes == ["applied"]


async def test_until_idle_waits_out_the_gaps_inside_a_burst():
    handler, outcomes = handler_with(FakeApply())
    loop = asyncio.get_running_loop()
    await handler(message_for(captured_envelope()))  # settled at once: none in hand now
    waiting = asyncio.create_task(handler.until_idle(at_most=60, quiet=0.3))
    await asyncio.sleep(0.15)
    assert not waiting.done()  # none in hand, but the last came in too recently
    await handler(message_for(captured_envelope()))  # the burst goes on
    second = loop.time()
    await asyncio.sleep(0.2)
    assert not waiting.done()  # 0.35 s after the first, 0.2 s after the second
    await asyncio.wait_for(waiting, 5)
    assert loop.time() - second >= 0.3
    assert outcomes == ["applied", "applied"]
