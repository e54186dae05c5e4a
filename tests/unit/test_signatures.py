import hashlib
import hmac

from shared import signatures


def test_checkout_signature_is_hmac_of_order_pipe_payment():
    expected = hmac.new(b"k", b"order_A|pay_B", hashlib.sha256).hexdigest()
    assert signatures.checkout_signature("order_A", "pay_B", "k") == expected
    assert signatures.checkout_signature_valid("order_A", "pay_B", expected, "k")
    # the seed's own doc once wrote payment|order: that order must NOT verify
    swapped = hmac.new(b"k", b"pay_B|order_A", hashlib.sha256).hexdigest()
    assert not signatures.checkout_signature_valid("order_A", "pay_B", swapped, "k")


def test_invalid_inputs_fail_without_raising():
    for bad in ["", "0" * 64, "é" * 64, "\x00", expected_upper()]:
        assert not signatures.checkout_signature_valid("order_A", "pay_B", bad, "k")


def expected_upper():
    return signatures.checkout_signature("order_A", "pay_B", "k").upper()


def test_webhook_any_configured_secret_matches_and_no_secret_never_does():
    body = b'{"event":"payment.captured"}'
    old, new = "old-secret", "new-secret"
    for secret in (old, new):
        sig = signatures.webhook_signature(body, secret)
        assert signatures.webhook_signature_valid(body, sig, [new, old])
    assert not signatures.webhook_signature_valid(body, signatures.webhook_signature(body, old),
                                                  [new])
    assert not signatures.webhook_signature_valid(body, "", [])
    assert not signatures.webhook_signature_valid(body + b" ", signatures.webhook_signature(
        body, new), [new])
