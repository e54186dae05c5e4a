"""Pass tokens as they were signed before key ids, for the tests that prove old passes
still verify and scan."""

from __future__ import annotations

import hashlib
import hmac


def legacy_token(booking_id: int, kind: str, secret: str) -> str:
    """A token as passes were signed before key ids, written out from its definition."""
    mac = hmac.new(secret.encode(), f"A6P1|{booking_id}|{kind}".encode(), hashlib.sha256)
    return f"A6P1.{booking_id}.{kind}.{mac.hexdigest()[:32]}"
