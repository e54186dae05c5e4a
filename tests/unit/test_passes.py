"""QR passes: signed tokens, deterministic PNGs a standard reader can scan."""

import base64
import hashlib
import io

import pytest
import zxingcpp
from PIL import Image

from shared.passes import PASS_KINDS, pass_token, passes_for, qr_data_url, verify_pass_token
from tests.unit.test_pass_tokens import legacy_token

SECRET = "unit-test-pass-secret"


def png_of(data_url: str) -> bytes:
    prefix = "data:image/png;base64,"
    assert data_url.startswith(prefix)
    return base64.b64decode(data_url.removeprefix(prefix), validate=True)


# The tokens' own tests (shape, forgeries, key rotation): tests/unit/test_pass_tokens.py


def test_other_kind_and_other_booking_have_other_tokens():
    tokens = {pass_token(b, k, SECRET) for b in (1, 2) for k in PASS_KINDS}
    assert len(tokens) == 4


@pytest.mark.parametrize(
    "booking_id, kind",
    [(0, "collection"), (-1, "return"), (True, "return"), ("7", "return"), (7, "lounge")],
)
def test_bad_inputs_raise(booking_id, kind):
    with pytest.raises(ValueError):
        pass_token(booking_id, kind, SECRET)


def test_rendering_is_deterministic():
    token = pass_token(123, "collection", SECRET)
    first = qr_data_url(token)
    qr_data_url.cache_clear()
    assert qr_data_url(token) == first  # re-rendered from scratch: same bytes
    assert png_of(first).startswith(b"\x89PNG\r\n\x1a\n")


def test_passes_for_gives_both_kinds_and_fresh_dicts():
    passes = passes_for(55, SECRET)
    assert set(passes) == set(PASS_KINDS)
    for kind, (token, url) in passes.items():
        assert verify_pass_token(token, SECRET) == (55, kind)
        assert url == qr_data_url(token)
    passes.clear()  # the caller's copy; the cache is unaffected
    assert set(passes_for(55, SECRET)) == set(PASS_KINDS)


@pytest.mark.parametrize("booking_id", [1, 987_654, 9_223_372_036_854_775_807])
def test_png_scans_back_to_exactly_the_token(booking_id):
    for kind, (token, url) in passes_for(booking_id, SECRET).items():
        image = Image.open(io.BytesIO(png_of(url)))
        results = zxingcpp.read_barcodes(image)
        assert [r.text for r in results] == [token], kind
        assert results[0].format == zxingcpp.BarcodeFormat.QRCode


@pytest.mark.parametrize(("booking_id", "kind", "sha256"), [
    (1, "collection", "119429401c0a054e4c13127664ab9943a086de02e1d34be148f8a1e690846745"),
    (9_223_372_036_854_775_807, "return",
     "5c5bddd6afba368089fe403b9767e52dc4971bc5d1a06833dfe742c8aa7b0356"),
])
def test_images_are_byte_for_byte_what_earlier_versions_stored(booking_id, kind, sha256):
    """Stored images are never drawn again, but a racer on another version may draw the
    same pass: a change to the writer must not change a single byte."""
    # the token as earlier versions signed it: the renderer is what is pinned here
    url = qr_data_url(legacy_token(booking_id, kind, SECRET))
    assert hashlib.sha256(url.encode()).hexdigest() == sha256
