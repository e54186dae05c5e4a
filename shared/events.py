"""Events: the only messages that cross RabbitMQ. Past-tense names, pydantic models."""

from __future__ import annotations

import os
import time
import uuid
from datetime import UTC, datetime
from typing import Any, ClassVar

from pydantic import BaseModel, Field


class Event(BaseModel):
    routing_key: ClassVar[str]


class _BookingEvent(Event):
    booking_id: int
    customer_id: int


class OrderCreated(_BookingEvent):
    routing_key: ClassVar[str] = "order.created"
    order_id: str
    amount_paise: int
    currency: str = "INR"


class PaymentCaptured(_BookingEvent):
    routing_key: ClassVar[str] = "payment.captured"
    order_id: str
    payment_id: str
    amount_paise: int
    source: str  # verify | webhook | reconcile | repair


class PaymentFailed(_BookingEvent):
    routing_key: ClassVar[str] = "payment.failed"
    order_id: str
    payment_id: str | None = None
    error_code: str | None = None
    error_description: str | None = None
    source: str


class BookingCancelled(_BookingEvent):
    routing_key: ClassVar[str] = "booking.cancelled"
    paid: bool  # a captured payment existed: its passes are revoked
    refund_paise: int  # what this cancellation refunds (0: nothing)
    cancellation_fee_paise: int = 0
    reason: str | None = None


class _RefundEvent(Event):
    refund_id: int
    booking_id: int
    customer_id: int
    amount_paise: int


class RefundCreated(_RefundEvent):
    """A refund row was written (before Razorpay is asked): the refund is initiated."""

    routing_key: ClassVar[str] = "refund.created"
    cause: str  # admin | cancellation | captured_after_cancellation


class RefundProcessed(_RefundEvent):
    routing_key: ClassVar[str] = "refund.processed"
    source: str  # refund_call | webhook | reconcile


class RefundFailed(_RefundEvent):
    routing_key: ClassVar[str] = "refund.failed"
    error: str | None = None
    source: str


class PassScanned(_BookingEvent):
    """A pass was used at the counter: the booking is now collected or returned."""

    routing_key: ClassVar[str] = "pass.scanned"
    kind: str  # collection | return
    result: str  # collected | returned
    scanned_at: datetime


EVENT_TYPES: dict[str, type[Event]] = {
    cls.routing_key: cls
    for cls in (
        OrderCreated, PaymentCaptured, PaymentFailed,
        BookingCancelled, RefundCreated, RefundProcessed, RefundFailed,
        PassScanned,
    )
}


def time_ordered_uuid() -> uuid.UUID:
    """A version-7 UUID (RFC 9562): 48 bits of Unix milliseconds, then random bits.

    Event ids are the primary keys of the outbox and of every consumer's inbox. Ids made
    later sort later, so both indexes grow at their right edge; random (version-4) ids land
    on any leaf page of a million-row index, and each insert read one from disk and wrote it
    whole to the WAL (the first change to a page after a checkpoint does)."""
    millis = time.time_ns() // 1_000_000
    value = (millis & (1 << 48) - 1) << 80 | int.from_bytes(os.urandom(10), "big")
    value = value & ~(0xF << 76) | 0x7 << 76  # version 7
    value = value & ~(0x3 << 62) | 0x2 << 62  # the RFC's variant
    return uuid.UUID(int=value)


class Envelope(BaseModel):
    """`{id, type, occurred_at, producer, correlation_id, data}` on the wire."""

    id: uuid.UUID = Field(default_factory=time_ordered_uuid)
    type: str
    occurred_at: datetime = Field(default_factory=lambda: datetime.now(UTC))
    producer: str
    correlation_id: str | None = None
    data: dict[str, Any]

    @classmethod
    def wrap(cls, event: Event, producer: str, correlation_id: str | None = None) -> Envelope:
        return cls(
            type=event.routing_key,
            producer=producer,
            correlation_id=correlation_id,
            data=event.model_dump(mode="json"),
        )

    def event(self) -> Event:
        """The typed event inside; raises KeyError / ValidationError for foreign messages."""
        return EVENT_TYPES[self.type].model_validate(self.data)
