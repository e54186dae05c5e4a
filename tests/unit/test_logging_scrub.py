import io
import json
import logging

from shared import logging as a6log


def test_scrub_hides_payment_ids_signatures_and_secrets():
    a6log.register_secrets(["supersecretvalue"])
    sig = "9ef4dffbfd84f1318f6739a3ce19f9d85851857ae648f114332d8401e0949a3d"
    text = a6log.scrub(f"pay_1DP5MMOQ9HrQ9jK8 order_1DP5MMOQ9HrQ9jK8 {sig} supersecretvalue")
    assert "pay_1DP5MMOQ9HrQ9jK8" not in text
    assert "order_1DP5MMOQ9HrQ9jK8" not in text
    assert sig not in text
    assert "supersecretvalue" not in text
    # the same id always gets the same fingerprint, so a payment can be followed
    assert a6log.scrub("pay_1DP5MMOQ9HrQ9jK8") == a6log.scrub("x pay_1DP5MMOQ9HrQ9jK8")[2:]


def test_scrub_hides_email_addresses_and_keeps_them_followable():
    refusal = "recipient refused: 450 4.1.2 <john.doe+cars@exampel.com>: Recipient address rejected"
    text = a6log.scrub(refusal)
    assert "@" not in text and "john" not in text and "exampel" not in text
    assert text.startswith("recipient refused: 450 4.1.2 <email#")
    assert a6log.scrub("JOHN.DOE+cars@Exampel.com") == a6log.scrub("john.doe+cars@exampel.com")


def test_a_refused_recipient_logged_by_the_mail_sender_shows_no_address():
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(a6log.JsonFormatter("notifier"))
    logger = logging.getLogger("scrub-test-mail")
    logger.addHandler(handler)
    logger.propagate = False
    logger.warning("mail %s failed: %s", 7,
                   "recipient refused: 550 5.1.1 <jane@example.org>: User unknown")
    assert "jane@example.org" not in stream.getvalue() and "jane" not in stream.getvalue()


def test_json_formatter_scrubs_message_and_context():
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(a6log.JsonFormatter("svc"))
    logger = logging.getLogger("scrub-test")
    logger.addHandler(handler)
    logger.propagate = False
    logger.warning("got %s", "pay_ABCDEFGHIJKLMN", extra=a6log.log_ctx(order="order_ABCDEFGHIJKL"))
    line = json.loads(stream.getvalue())
    assert line["service"] == "svc" and line["level"] == "warning"
    assert "pay_ABCDEFGHIJKLMN" not in stream.getvalue()
    assert "order_ABCDEFGHIJKL" not in stream.getvalue()


def test_stdout_wrapper_scrubs_sdk_prints():
    out = io.StringIO()
    wrapped = a6log.ScrubbingStream(out)
    wrapped.write("Request error: /v1/payments/pay_ABCDEFGHIJKLMN failed\n")
    assert "pay_ABCDEFGHIJKLMN" not in out.getvalue()
    assert "/v1/payments/pay#" in out.getvalue()


def test_our_own_service_names_are_not_mistaken_for_ids():
    assert a6log.scrub('{"service": "order_service"}') == '{"service": "order_service"}'
    assert "order_serviceX1" not in a6log.scrub("order_serviceX1")


def test_short_test_ids_from_other_apis_are_scrubbed_too():
    for value in ("pay_123", "pay_test123", "order_T1", "pay_abcdefghijkl"):
        assert value not in a6log.scrub(f"GET /v1/payments/{value}/capture"), value
    for word in ("order_id", "order.created", "payment_id"):
        assert a6log.scrub(word) == word
