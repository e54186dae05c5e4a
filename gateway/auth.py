"""Optional customer authentication: an HS256 bearer token whose `sub` is the customer id.

Pure functions, no aiohttp: the gateway calls them and maps `AuthError` to 401.
"""

from __future__ import annotations

import json
import re
import warnings

import jwt

AUTH_REQUIRED = "Authentication required"
INVALID_TOKEN = "Invalid or expired token"

_CUSTOMER_ID_RE = re.compile(r"[0-9]{1,18}")  # ASCII digits only, fits a bigint


class AuthError(Exception):
    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


def authenticate(authorization: str | None, secret: str, *, audience: str = "",
                 issuer: str = "") -> str:
    """Check the `Authorization: Bearer <token>` header; return the customer id (canonical
    digits) its token names.

    `audience` / `issuer` set: the token must carry that `aud` / `iss` (a token made for
    another service of the same issuer is not ours). Unset: not checked, so a token that
    names an audience is not refused for it."""
    scheme, _, token = (authorization or "").strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise AuthError(AUTH_REQUIRED)
    if not token.isascii():
        # A token is base64url and dots. Header bytes that are not UTF-8 arrive as lone
        # surrogates, which the JWT library cannot encode: refused here like any bad token.
        raise AuthError(INVALID_TOKEN)
    required = ["exp", "sub"] + (["aud"] if audience else []) + (["iss"] if issuer else [])
    try:
        with warnings.catch_warnings():
            # A short secret is reported once at startup, not on every request.
            warnings.simplefilter("ignore", jwt.InsecureKeyLengthWarning)
            claims = jwt.decode(
                token,
                secret,
                algorithms=["HS256"],  # pinned: never let the token choose its algorithm
                options={"require": required, "verify_aud": bool(audience)},
                audience=audience or None,
                issuer=issuer or None,
            )
    except jwt.InvalidTokenError as exc:
        raise AuthError(INVALID_TOKEN) from exc
    subject = claims.get("sub")
    if not isinstance(subject, str) or not _CUSTOMER_ID_RE.fullmatch(subject):
        raise AuthError(INVALID_TOKEN)
    return str(int(subject))


def _same_customer(value: object, customer_id: str) -> bool:
    if isinstance(value, bool):  # bool is an int in Python; True is not customer 1
        return False
    if isinstance(value, int):
        return str(value) == customer_id
    if isinstance(value, str) and _CUSTOMER_ID_RE.fullmatch(value):
        return str(int(value)) == customer_id
    return False


class _Pairs(list):
    """A JSON object as its raw (key, value) pairs, duplicates kept."""


def body_customer_matches(body: bytes, customer_id: str) -> bool:
    """False when a JSON object body names a different `customer_id` than the token.

    A body that is not a JSON object, or has no `customer_id`, matches: the service
    validates it. Every top-level `customer_id` counts, so a duplicate key cannot slip a
    second value past a parser that keeps the other one.
    """
    try:
        document = json.loads(body, object_pairs_hook=_Pairs)
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
        return True
    if not isinstance(document, _Pairs):
        return True  # an array or a scalar at the top level
    values = [value for key, value in document if key == "customer_id"]
    return all(_same_customer(value, customer_id) for value in values)
