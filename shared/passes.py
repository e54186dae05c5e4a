"""QR passes: a signed token per (booking, kind), rendered as a deterministic PNG data URL.

Pure and shared: the notifier stores these images and verify-payment returns them, so the
same booking must always render to the same bytes. The tokens (shared/pass_tokens.py) carry
the signing key's id: staff scan one and `verify_pass_token` says which booking and which
leg it admits.
"""

from __future__ import annotations

import base64
import functools
import io

# The tokens live in shared/pass_tokens.py; imported here for the rendering and its callers
from shared.pass_tokens import PASS_KINDS, pass_token, verify_pass_token

__all__ = ["PASS_KINDS", "pass_token", "qr_data_url", "verify_pass_token"]

# Fixed rendering parameters make the PNG a pure function of the token. Version 6-M holds
# 106 bytes; the longest token (key id, 19-digit booking id, "collection") is 77.
_QR_VERSION = 6
_QR_BOX_SIZE = 8
_QR_BORDER = 4
_QR_MASK = 2


@functools.lru_cache(maxsize=64)  # stored once drawn: a repeat is a racer's, moments apart
def qr_data_url(token: str) -> str:
    """`data:image/png;base64,…` of the token's QR code; same token, same bytes."""
    # Loaded on the first render: qrcode and Pillow are memory that a process which only
    # reads stored images (a notifier whose mails find them drawn by verify) never needs.
    import qrcode
    from PIL import Image
    from qrcode.constants import ERROR_CORRECT_M

    code = qrcode.QRCode(
        version=_QR_VERSION,
        error_correction=ERROR_CORRECT_M,
        border=_QR_BORDER,
        # A fixed mask: choosing the "best" of 8 lays the code out 8 times, and any mask scans.
        mask_pattern=_QR_MASK,
    )
    code.add_data(token)
    code.make(fit=False)  # a token that does not fit is a bug: raise, don't grow the code
    modules = code.get_matrix()  # border included; True is dark
    side = len(modules)
    # One pixel per module, then each module a square of _QR_BOX_SIZE pixels: a 1-bit image
    # scaled without smoothing, instead of a rectangle drawn per module.
    image = Image.new("1", (side, side))
    image.putdata([0 if dark else 255 for row in modules for dark in row])
    image = image.resize((side * _QR_BOX_SIZE,) * 2, Image.Resampling.NEAREST)
    png = io.BytesIO()
    # zlib level 2: less CPU than the default for a pass whose PNG is barely larger
    image.save(png, format="PNG", compress_level=2)
    return "data:image/png;base64," + base64.b64encode(png.getvalue()).decode("ascii")
