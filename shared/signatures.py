"""Razorpay's two HMAC-SHA256 signatures, always compared in constant time."""

from __future__ import annotations

import hashlib
import hmac


def _hex_hmac(secret: str, message: bytes) -> str:
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def _same(expected: str, given: str) -> bool:
    # compare_digest on bytes: a non-ASCII `given` must not raise, just fail.
    return hmac.compare_digest(expected.encode(), given.encode("utf-8", "replace"))


def checkout_signature(order_id: str, payment_id: str, key_secret: str) -> str:
    return _hex_hmac(key_secret, f"{order_id}|{payment_id}".encode())


def checkout_signature_valid(
    order_id: str, payment_id: str, signature: str, key_secret: str
) -> bool:
    return _same(checkout_signature(order_id, payment_id, key_secret), signature)


def webhook_signature(raw_body: bytes, secret: str) -> str:
    return _hex_hmac(secret, raw_body)


def webhook_signature_valid(raw_body: bytes, signature: str, secrets: list[str]) -> bool:
    """Any configured secret may match: old and new both work while a secret is rotated.
    Every secret is tried, so timing says nothing about which one matched."""
    results = [_same(webhook_signature(raw_body, s), signature) for s in secrets]
    return any(results)
