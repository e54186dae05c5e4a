"""Composing a mail from an outbox row, and how SMTP answers are classified (no server)."""

from datetime import UTC, date, datetime
from email import message_from_bytes
from email.policy import default

import pytest

from notifier.mail_message import BadAddress, compose, envelope_address, message_id, png_of
from notifier.mail_sender import _by_code
from notifier.mail_templates import render
from tests.support.pass_tokens import expected_passes

BOOKING = {"id": 7, "customer_name": "Asha Rao", "car_name": "Maruti Swift",
           "start_date": date(2025, 12, 28), "end_date": date(2025, 12, 30),
           "amount_paise": 150_000, "status": "confirmed"}
ROW = {"id": 31, "kind": "payment_confirmed", "dedupe_key": "payment_confirmed:7",
       "recipient": "asha@example.com", "details": {"amount_paise": 150_000},
       "created_at": datetime(2025, 12, 1, 10, 0, tzinfo=UTC)}
SENDER = "A6 Cars <bookings@a6cars.example>"


def passes():
    return {kind: png_of(url) for kind, (_, url) in expected_passes(7, "secret").items()}


def composed(row=ROW, booking=BOOKING, images=None):
    """What the sender hands to SMTP, read back by the standard library's parser."""
    raw = compose(row, booking, {} if images is None else images, SENDER)
    assert b"\r\n" in raw and b"\n" not in raw.replace(b"\r\n", b"")  # CRLF only
    message = message_from_bytes(raw, policy=default)
    assert not message.defects and all(not p.defects for p in message.walk())
    return message


def test_confirmation_is_text_and_html_with_passes_inline_and_attached():
    message = composed(images=passes())
    assert message.get_content_type() == "multipart/mixed"
    assert str(message["To"]) == "Asha Rao <asha@example.com>"
    assert str(message["Subject"]) == "Booking #7 confirmed: Maruti Swift"
    assert message.get_body(("plain",)).get_content().startswith("Hi Asha Rao,")
    html = message.get_body(("html",))
    assert html.get_content_type() == "text/html"
    related = [p for p in message.walk() if p.get_content_type() == "multipart/related"]
    assert len(related) == 1
    cids = sorted(str(p["Content-ID"]) for p in message.walk() if p["Content-ID"])
    assert cids == ["<collection-pass@a6pay>", "<return-pass@a6pay>"]
    attached = sorted(p.get_filename() for p in message.iter_attachments())
    assert attached == ["collection-pass.png", "return-pass.png"]
    images = [p.get_payload(decode=True) for p in message.walk()
              if p.get_content_type() == "image/png"]
    assert images == [passes()["collection"], passes()["return"]] * 2  # inline, attached


def test_the_operators_mail_about_a_dispute_is_not_written_to_the_customer():
    row = {**ROW, "kind": "dispute_opened", "dedupe_key": "dispute_opened:disp_1",
           "recipient": "ops@a6cars.example",
           "details": {"amount_paise": 150_000, "respond_by": "2026-01-08"}}
    message = composed(row)
    assert str(message["To"]) == "A6 Cars operations <ops@a6cars.example>"
    text = message.get_body(("plain",)).get_content()
    assert text.startswith("Hi A6 Cars operations,") and "Asha" not in text


def test_other_kinds_carry_no_images():
    row = {**ROW, "kind": "payment_failed", "dedupe_key": "payment_failed:7:x", "details": {}}
    message = composed(row)
    assert message.get_content_type() == "multipart/alternative"
    assert not [p for p in message.walk() if p.get_content_maintype() == "image"]


def test_message_id_is_stable_per_row_and_differs_between_rows():
    first = composed()["Message-ID"]
    assert compose(ROW, BOOKING, passes(), SENDER) == compose(ROW, BOOKING, passes(), SENDER)
    assert first == message_id(31, "payment_confirmed:7", SENDER)
    assert first.endswith("@a6cars.example>")
    assert message_id(32, "payment_confirmed:8", SENDER) != first


@pytest.mark.parametrize("bad", ["", "asha", "asha@", "@example.com", "a b@example.com",
                                 "asha@example.com\r\nBcc: x@evil.example"])
def test_addresses_that_are_not_addresses_are_refused(bad):
    with pytest.raises(BadAddress):
        compose({**ROW, "recipient": bad}, BOOKING, {}, SENDER)


def test_envelope_address_takes_the_bare_address():
    assert envelope_address(SENDER) == "bookings@a6cars.example"
    assert envelope_address("asha@example.com") == "asha@example.com"


@pytest.mark.parametrize(("code", "state"), [(550, "failed"), (553, "failed"),
                                             (554, "failed"), (450, "pending"),
                                             (451, "pending"), (421, "pending")])
def test_5xx_is_permanent_4xx_is_transient(code, state):
    assert _by_code(code, "x").state == state


def test_text_and_html_read_back_as_rendered():
    message = composed(images=passes())
    rendered = render("payment_confirmed", BOOKING, ROW["details"], ("collection", "return"))
    plain = message.get_body(("plain",)).get_content()
    assert plain.replace("\r\n", "\n") == rendered.text
    assert message.get_body(("html",)).get_content().replace("\r\n", "\n") == rendered.html


def test_non_ascii_names_and_subjects_are_encoded_and_read_back():
    booking = {**BOOKING, "customer_name": "अनन्या Rāo", "car_name": "Tata Nexon ₹ " * 10}
    message = composed(booking=booking, images=passes())
    assert message["To"].addresses[0].display_name == "अनन्या Rāo"
    assert message["To"].addresses[0].addr_spec == "asha@example.com"
    assert message["Subject"] == "Booking #7 confirmed: " + ("Tata Nexon ₹ " * 10).strip()
    assert "अनन्या Rāo" in message.get_body(("plain",)).get_content()


@pytest.mark.parametrize("name", ["Asha\r\nBcc: evil@example.com", "Asha\nBcc: evil@example.com",
                                  "Asha\rBcc: evil@example.com"])
def test_a_line_break_in_a_name_cannot_add_a_header(name):
    message = composed(booking={**BOOKING, "customer_name": name})
    assert message["Bcc"] is None
    assert [a.addr_spec for a in message["To"].addresses] == ["asha@example.com"]
