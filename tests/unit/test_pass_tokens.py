"""Pass tokens: signed, carrying the signing key's id, verifiable across a rotation."""

import pytest

from shared.pass_tokens import PASS_KINDS, key_id, pass_token, verify_pass_token
from tests.support.pass_tokens import legacy_token

SECRET = "unit-test-pass-secret"
OLD = "the-secret-before-rotation"


@pytest.mark.parametrize("kind", PASS_KINDS)
@pytest.mark.parametrize("booking_id", [1, 42, 9_223_372_036_854_775_807])
def test_round_trip(booking_id, kind):
    token = pass_token(booking_id, kind, SECRET)
    assert token.startswith(f"A6P2.{key_id(SECRET)}.{booking_id}.{kind}.")
    assert verify_pass_token(token, SECRET) == (booking_id, kind)


def test_token_shape_and_the_key_id_names_the_secret():
    token = pass_token(7, "return", SECRET)
    version, kid, booking, kind, mac = token.split(".")
    assert (version, kid, booking, kind) == ("A6P2", key_id(SECRET), "7", "return")
    assert len(kid) == 8 and len(mac) == 32 and int(kid + mac, 16) >= 0
    assert key_id(OLD) != key_id(SECRET)
    assert len(pass_token(2**63 - 1, "collection", SECRET)) == 77  # fits the QR's 106 bytes


def test_a_rotated_out_secret_still_verifies_its_passes():
    old_token = pass_token(9, "collection", OLD)
    assert verify_pass_token(old_token, SECRET) is None  # the old key unknown: refused
    assert verify_pass_token(old_token, SECRET, OLD) == (9, "collection")
    assert verify_pass_token(pass_token(9, "return", SECRET), SECRET, OLD) == (9, "return")


def test_a_token_is_checked_only_with_the_key_it_names():
    token = pass_token(9, "collection", OLD)
    _, kid, rest = token.split(".", 2)
    renamed = f"A6P2.{key_id(SECRET)}.{rest}"  # the right mac under another key's name
    assert verify_pass_token(renamed, SECRET, OLD) is None


def test_tokens_issued_before_key_ids_verify_with_any_configured_secret():
    assert verify_pass_token(legacy_token(5, "return", SECRET), SECRET) == (5, "return")
    assert verify_pass_token(legacy_token(5, "return", OLD), SECRET, OLD) == (5, "return")
    assert verify_pass_token(legacy_token(5, "return", "unknown"), SECRET, OLD) is None


def test_forged_and_tampered_tokens_are_rejected():
    token = pass_token(7, "collection", SECRET)
    kid, mac = token.split(".")[1], token.rsplit(".", 1)[1]
    flipped = mac[:-1] + ("0" if mac[-1] != "0" else "1")
    forged = [
        pass_token(7, "collection", "another-secret"),  # signed with the wrong key
        f"A6P2.{kid}.7.collection.{flipped}",  # one hex digit changed
        f"A6P2.{kid}.7.return.{mac}",  # other kind, same mac
        f"A6P2.{kid}.8.collection.{mac}",  # other booking, same mac
        f"A6P1.7.collection.{mac}",  # the legacy version with the new mac
        f"A6P3.{kid}.7.collection.{mac}",  # other version
        f"A6P2.{kid}.07.collection.{mac}",  # leading zero: a second spelling of booking 7
        f"A6P2.{kid.upper()}.7.collection.{mac}",
        f"A6P2.{kid}.7.collection.{mac.upper()}",
        f"A6P2.{kid}.7.collection.{mac}\n",
        f" A6P2.{kid}.7.collection.{mac}",
        f"A6P2.{kid}.7.collection.{mac}00",
        f"A6P2.{kid}.7.collection.{mac[:-2]}",
        f"A6P2.{kid}.-7.collection.{mac}",
        f"A6P2.{kid}.0.collection.{mac}",
        f"A6P2.{kid}.٧.collection.{mac}",  # a non-ASCII digit
        f"A6P2.{kid}.7.lounge.{mac}",
        f"A6P2..7.collection.{mac}",
        "",
        "A6P2....",
        "not a token",
    ]
    for candidate in forged:
        assert verify_pass_token(candidate, SECRET) is None, candidate
    assert verify_pass_token(token, "") is None
    assert verify_pass_token(token) is None
    assert verify_pass_token(None, SECRET) is None  # type: ignore[arg-type]
