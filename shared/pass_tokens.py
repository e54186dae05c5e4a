"""Pass tokens: what a QR pass encodes, signed so staff can trust it, with the id of the key
that signed it so PASS_SIGNING_SECRET can be rotated while passes already mailed still scan.

    A6P2.<key id>.<booking_id>.<kind>.<mac>

`key id` is 8 hex of HMAC-SHA256(secret, "A6P key id"): derived from the secret, so a
rotation needs no second setting to keep in step, and it says nothing about the secret that
the mac does not. `mac` is 32 hex of HMAC-SHA256(secret, "A6P2|<key id>|<booking>|<kind>").

Tokens issued before key ids (`A6P1.<booking_id>.<kind>.<mac>`) keep verifying: each
configured secret, current and old, is tried in turn (a handful at most). A mailed pass is
the customer's ticket to the car; refusing it at the counter because we rotated a key would
fail the customer, not an attacker.
"""

from __future__ import annotations

import hashlib
import hmac
import re

PASS_KINDS = ("collection", "return")

_VERSION = "A6P2"
_LEGACY_VERSION = "A6P1"
_MAC_HEX = 32  # 128 bits of HMAC-SHA256: ample against forgery, keeps the QR small
_KEY_ID_HEX = 8
_BOOKING = r"([1-9][0-9]{0,18})"
_KIND = r"(collection|return)"
_TOKEN_RE = re.compile(rf"A6P2\.([0-9a-f]{{8}})\.{_BOOKING}\.{_KIND}\.([0-9a-f]{{32}})", re.ASCII)
_LEGACY_RE = re.compile(rf"A6P1\.{_BOOKING}\.{_KIND}\.([0-9a-f]{{32}})", re.ASCII)


def _hmac_hex(secret: str, message: str) -> str:
    return hmac.new(secret.encode(), message.encode(), hashlib.sha256).hexdigest()


def key_id(secret: str) -> str:
    """The public name of a signing secret, as tokens carry it."""
    return _hmac_hex(secret, "A6P key id")[:_KEY_ID_HEX]


def _mac(secret: str, kid: str, booking_id: int, kind: str) -> str:
    return _hmac_hex(secret, f"{_VERSION}|{kid}|{booking_id}|{kind}")[:_MAC_HEX]


def _legacy_mac(secret: str, booking_id: int, kind: str) -> str:
    return _hmac_hex(secret, f"{_LEGACY_VERSION}|{booking_id}|{kind}")[:_MAC_HEX]


def pass_token(booking_id: int, kind: str, secret: str) -> str:
    """The signed token for one pass; raises ValueError for an unknown kind or bad id."""
    if kind not in PASS_KINDS:
        raise ValueError(f"unknown pass kind: {kind!r}")
    if isinstance(booking_id, bool) or not isinstance(booking_id, int) or booking_id <= 0:
        raise ValueError("booking_id must be a positive integer")
    if not secret:
        raise ValueError("a pass signing secret is required")
    kid = key_id(secret)
    return f"{_VERSION}.{kid}.{booking_id}.{kind}.{_mac(secret, kid, booking_id, kind)}"


def verify_pass_token(token: str, *secrets: str) -> tuple[int, str] | None:
    """(booking_id, kind) for a token signed by one of `secrets` (the current one first,
    then those rotated out); None for anything malformed or forged."""
    secrets = tuple(s for s in secrets if s)
    if not isinstance(token, str) or not secrets:
        return None
    if match := _TOKEN_RE.fullmatch(token):
        kid, booking_id, kind, mac = match[1], int(match[2]), match[3], match[4]
        candidates = [s for s in secrets if hmac.compare_digest(key_id(s), kid)]
        ok = any(hmac.compare_digest(mac, _mac(s, kid, booking_id, kind)) for s in candidates)
    elif match := _LEGACY_RE.fullmatch(token):
        booking_id, kind, mac = int(match[1]), match[2], match[3]
        ok = any(hmac.compare_digest(mac, _legacy_mac(s, booking_id, kind)) for s in secrets)
    else:
        return None
    return (booking_id, kind) if ok else None
