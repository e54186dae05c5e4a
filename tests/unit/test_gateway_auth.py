"""Bearer-token check and the body's customer_id check, without HTTP."""

import time

import jwt
import pytest

from gateway.auth import (
    AUTH_REQUIRED,
    INVALID_TOKEN,
    AuthError,
    authenticate,
    body_customer_matches,
)

SECRET = "unit-test-jwt-secret-" + "0123456789abcdef" * 4  # long enough for HS512 too


def token(secret: str = SECRET, algorithm: str = "HS256", **claims) -> str:
    payload = {"sub": "45", "exp": int(time.time()) + 300} | claims
    payload = {k: v for k, v in payload.items() if v is not None}
    return jwt.encode(payload, secret, algorithm=algorithm)


def test_a_valid_token_gives_the_customer_id():
    assert authenticate(f"Bearer {token()}", SECRET) == "45"
    assert authenticate(f"bearer   {token()}  ", SECRET) == "45"


def test_a_token_that_was_not_utf8_is_an_invalid_token():
    # aiohttp keeps header bytes that are not UTF-8 as lone surrogates
    for header in ["Bearer \udcff\udcfe", f"Bearer {token()}\udcff", "Bearer é☃"]:
        with pytest.raises(AuthError) as err:
            authenticate(header, SECRET)
        assert err.value.message == INVALID_TOKEN


def test_leading_zeros_are_canonicalised():
    assert authenticate(f"Bearer {token(sub='0045')}", SECRET) == "45"


@pytest.mark.parametrize("header", [None, "", "Bearer", "Bearer   ", "Basic dXNlcjpwdw==", "tok"])
def test_missing_or_non_bearer_header_asks_for_authentication(header):
    with pytest.raises(AuthError) as err:
        authenticate(header, SECRET)
    assert err.value.message == AUTH_REQUIRED


@pytest.mark.parametrize(
    "bad_token",
    [
        "not.a.jwt",
        token(secret="another-secret-" + "x" * 64),
        token(exp=int(time.time()) - 5),
        token(exp=None),
        token(sub=None),
        token(sub="abc"),
        token(sub="-4"),
        token(sub="٤٥"),  # Arabic-Indic digits: str.isdigit() would say yes
        token(sub="1" * 19),
        token(algorithm="HS512"),
        jwt.encode({"sub": "45", "exp": 9_999_999_999}, None, algorithm="none"),
    ],
)
def test_bad_tokens_are_invalid(bad_token):
    with pytest.raises(AuthError) as err:
        authenticate(f"Bearer {bad_token}", SECRET)
    assert err.value.message == INVALID_TOKEN


def test_an_integer_sub_is_refused():
    # PyJWT insists on a string `sub`; the gateway relies on that, pin it.
    with pytest.raises(AuthError):
        authenticate(f"Bearer {token(sub=45)}", SECRET)


@pytest.mark.parametrize(
    ("body", "matches"),
    [
        (b'{"booking_id": 1, "customer_id": 45}', True),
        (b'{"customer_id": "45"}', True),
        (b'{"customer_id": "045"}', True),
        (b'{"booking_id": 1}', True),  # absent: the service answers 400
        (b"not json", True),  # not JSON: forwarded, the service answers 400
        (b"\xff\xfe\x00garbage", True),
        (b"", True),
        (b"[1, 2]", True),
        (b'[{"customer_id": 7}]', True),  # not an object at the top level
        (b'{"nested": {"customer_id": 7}}', True),
        (b'{"customer_id": 46}', False),
        (b'{"customer_id": "46"}', False),
        (b'{"customer_id": null}', False),
        (b'{"customer_id": true}', False),
        (b'{"customer_id": 45.5}', False),
        (b'{"customer_id": [45]}', False),
        (b'{"customer_id": 45, "customer_id": 46}', False),  # duplicate keys
        (b'{"customer_id": 46, "customer_id": 45}', False),
    ],
)
def test_body_customer_matches(body, matches):
    assert body_customer_matches(body, "45") is matches


def test_audience_and_issuer_are_checked_when_configured():
    good = token(aud="a6pay", iss="https://auth.a6cars.example")
    assert authenticate(f"Bearer {good}", SECRET, audience="a6pay",
                        issuer="https://auth.a6cars.example") == "45"
    for bad in (token(aud="other", iss="https://auth.a6cars.example"),
                token(aud="a6pay", iss="https://evil.example"),
                token(iss="https://auth.a6cars.example"),  # no aud at all
                token(aud="a6pay")):  # no iss at all
        with pytest.raises(AuthError):
            authenticate(f"Bearer {bad}", SECRET, audience="a6pay",
                         issuer="https://auth.a6cars.example")


def test_a_token_naming_an_audience_passes_when_none_is_configured():
    assert authenticate(f"Bearer {token(aud='a6pay')}", SECRET) == "45"
