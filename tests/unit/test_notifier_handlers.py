"""Handler wiring and wording, without a database (the SQL is covered in
tests/integration/test_notifier.py, which calls the same handlers on a real connection)."""

from datetime import date

import pytest

from notifier import handlers, mail_templates
from notifier.mail_outbox import KINDS
from shared.events import EVENT_TYPES, PaymentCaptured
from shared.messaging import CONSUMERS

BOOKING = {"id": 42, "customer_name": "Asha <Rao>", "car_name": "Maruti Swift",
           "start_date": date(2025, 12, 28), "end_date": date(2026, 1, 2),
           "amount_paise": 150_000}


# Captures are confirmed in batches (notifier/consumer.py: confirm_batches), every other
# event by its handler on one connection.
HANDLED = [PaymentCaptured, *handlers.HANDLERS]


def test_every_event_type_has_exactly_one_handler():
    assert PaymentCaptured not in handlers.HANDLERS
    assert set(HANDLED) == set(EVENT_TYPES.values())


def test_the_notifier_queue_is_bound_to_every_type_it_handles():
    assert sorted(CONSUMERS["notifier"]) == sorted(t.routing_key for t in HANDLED)


def test_amounts_and_dates_read_naturally():
    assert mail_templates.rupees(150_000) == "₹1,500.00"
    assert mail_templates.rupees(1) == "₹0.01"
    assert mail_templates.dates(BOOKING) == "28 Dec 2025 to 02 Jan 2026"


@pytest.mark.parametrize("kind", KINDS)
def test_every_kind_names_the_booking_car_and_dates_in_both_parts(kind):
    mail = mail_templates.render(kind, BOOKING, {})
    assert "#42" in mail.subject
    for part in (mail.text, mail.html):
        assert "Maruti Swift" in part and "28 Dec 2025 to 02 Jan 2026" in part
    if kind in mail_templates.OPS_KINDS:  # to the operators: the customer is not greeted
        assert mail.text.startswith(f"Hi {mail_templates.OPS_NAME},") and "Asha" not in mail.text
    else:
        assert "Asha <Rao>" in mail.text and "Asha &lt;Rao&gt;" in mail.html  # escaped in HTML
    assert "<Rao>" not in mail.html


def test_confirmation_shows_amount_and_references_both_passes():
    mail = mail_templates.render("payment_confirmed", BOOKING, {"amount_paise": 150_000},
                                 ("collection", "return"))
    assert "₹1,500.00" in mail.text and "₹1,500.00" in mail.html
    assert 'src="cid:collection-pass@a6pay"' in mail.html
    assert 'src="cid:return-pass@a6pay"' in mail.html
    assert "collection-pass.png" in mail.text and "return-pass.png" in mail.text


def test_details_drive_the_cancellation_and_refund_wording():
    cancelled = mail_templates.render("booking_cancelled", BOOKING, {
        "reason": "customer asked", "cancellation_fee_paise": 20_000,
        "refund_amount_paise": 130_000})
    assert "customer asked" in cancelled.text and "₹200.00" in cancelled.text
    assert "₹1,300.00" in cancelled.text and "no longer valid" in cancelled.text
    partial = mail_templates.render("refund_processed", BOOKING, {"amount_paise": 50_000})
    assert "₹500.00" in partial.subject and "₹500.00" in partial.text
    failed = mail_templates.render("refund_failed", BOOKING, {"amount_paise": True})
    assert "₹1,500.00" in failed.text  # a nonsense amount falls back to the booking's
