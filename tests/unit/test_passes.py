"""QR passes: signed tokens, deterministic PNGs a standard reader can scan."""

import base64
import hashlib
import io

import pytest
import zxingcpp
from PIL import Image

from shared.passes import PASS_KINDS, pass_token, qr_data_url
from tests.support.pass_tokens import expected_passes

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


@pytest.mark.parametrize("booking_id", [1, 987_654, 9_223_372_036_854_775_807])
def test_png_scans_back_to_exactly_the_token(booking_id):
    for kind, (token, url) in expected_passes(booking_id, SECRET).items():
        image = Image.open(io.BytesIO(png_of(url)))
        results = zxingcpp.read_barcodes(image)
        assert [r.text for r in results] == [token], kind
        assert results[0].format == zxingcpp.BarcodeFormat.QRCode


@pytest.mark.parametrize(("token", "sha256"), [
    ("A6P1.1.collection.62732f5914e81b90d8db09b5906948d2",
     "4813c94056d8eec11a69fec6388e003319dea9bb4e0f78be1d36fde88594cfaf"),
    ("A6P1.9223372036854775807.return.46ad1ef2e9a6bb41c428932447932dfc",
     "e188f796d3284abb867409c942f459a4c8413a2c20b78a56800dd7d8ce6e3df8"),
])
def test_images_show_pixel_for_pixel_what_earlier_versions_stored(token, sha256):
    """A pass already mailed and one drawn now are the same picture: same size, same
    modules, same mask (the PNG's compressed bytes may differ between encoders)."""
    image = Image.open(io.BytesIO(png_of(qr_data_url(token))))
    assert (image.mode, image.size) == ("1", (392, 392))
    assert hashlib.sha256(image.convert("L").tobytes()).hexdigest() == sha256
