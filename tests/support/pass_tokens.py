"""Passes as a booking's tests expect them: both kinds drawn from their tokens, and tokens as
they were signed before key ids (old passes must still verify and scan)."""

from __future__ import annotations

import hashlib
import hmac

from shared.passes import PASS_KINDS, pass_token, qr_data_url


def legacy_token(booking_id: int, kind: str, secret: str) -> str:
    """A token as passes were signed before key ids, written out from its definition."""
    mac = hmac.new(secret.encode(), f"A6P1|{booking_id}|{kind}".encode(), hashlib.sha256)
    return f"A6P1.{booking_id}.{kind}.{mac.hexdigest()[:32]}"


def expected_passes(booking_id: int, secret: str) -> dict[str, tuple[str, str]]:
    """kind -> (token, data URL) for both passes of a booking."""
    return {kind: (token, qr_data_url(token))
            for kind in PASS_KINDS for token in (pass_token(booking_id, kind, secret),)}
