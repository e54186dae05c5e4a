"""QR passes: a signed token per (booking, kind), rendered as a deterministic PNG data URL.

Pure and shared: the notifier stores these images and verify-payment returns them, so the
same booking must always render to the same bytes. The tokens (shared/pass_tokens.py) carry
the signing key's id: staff scan one and `verify_pass_token` says which booking and which
leg it admits.
"""

from __future__ import annotations

import base64
import functools
import struct
import zlib

# The tokens live in shared/pass_tokens.py; imported here for the rendering and its callers
from shared.pass_tokens import PASS_KINDS, pass_token, verify_pass_token

__all__ = ["PASS_KINDS", "pass_token", "passes_for", "qr_data_url", "verify_pass_token"]

# Fixed rendering parameters make the PNG a pure function of the token (the mask is the
# one the QR spec's penalty rules pick, itself deterministic). Version 6-M holds 106
# bytes; the longest token (key id, 19-digit booking id, "collection") is 77.
_QR_VERSION = 6
_QR_BOX_SIZE = 8
_QR_BORDER = 4
_QR_MASK = 2


@functools.lru_cache(maxsize=64)  # stored once drawn: a repeat is a racer's, moments apart
def qr_data_url(token: str) -> str:
    """`data:image/png;base64,…` of the token's QR code; same token, same bytes."""
    # Loaded on the first render: qrcode imports Pillow, ~6 MB that a process which only
    # reads stored images (a notifier whose mails find them drawn by verify) never needs.
    import qrcode
    from qrcode.constants import ERROR_CORRECT_M

    from shared.qr_codewords import codewords

    code = qrcode.QRCode(
        version=_QR_VERSION,
        error_correction=ERROR_CORRECT_M,
        box_size=_QR_BOX_SIZE,
        border=_QR_BORDER,
        # A fixed mask: choosing the "best" of 8 renders the code 8 times (16 ms → 3.5 ms
        # per image here), and any mask scans.
        mask_pattern=_QR_MASK,
    )
    code.add_data(token)
    # qrcode's own codewords, made ten times faster (shared/qr_codewords.py); qrcode splits
    # the text into segments before and places the codewords after, as it always did
    code.data_cache = codewords(_QR_VERSION, ERROR_CORRECT_M, code.data_list)
    code.make(fit=False)  # a token that does not fit is a bug: raise, don't grow the code
    png = _png(code.get_matrix())  # the modules, border included; True is dark
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


_DARK_TO_PIXEL = bytes.maketrans(b"\x00\x01", b"\xff\x00")  # bool → one byte: light FF


def _png(modules: list[list[bool]]) -> bytes:
    """A 1-bit greyscale PNG of the modules, each `_QR_BOX_SIZE` pixels square.

    Written directly rather than drawn with Pillow (one rectangle per module: 4 ms of the
    5 an image took). At 8 pixels per module and 1 bit per pixel a module is one byte,
    0x00 dark or 0xFF light. Each scanline uses PNG's "Up" filter (the difference from the
    line above), so the 7 repeats of a module row are zeros that compress to nothing.
    A module row is one big integer (a byte per module), so that difference is three bit
    operations, not a Python loop over bytes: with bytes only 00 or FF, `a - b` is 00 where
    they agree, FF where a is FF, and 01 where a is 00.
    """
    assert _QR_BOX_SIZE == 8  # one module = one byte below
    width = len(modules)
    ones = int.from_bytes(b"\x01" * width, "big")
    repeat = (b"\x02" + bytes(width)) * (_QR_BOX_SIZE - 1)
    rows, above = [], 0
    for line in modules:
        pixels = int.from_bytes(bytes(line).translate(_DARK_TO_PIXEL), "big")
        changed = pixels ^ above
        up = (changed & pixels) | (changed & ~pixels & ones)
        rows.append(b"\x02" + up.to_bytes(width, "big") + repeat)
        above = pixels
    side = width * _QR_BOX_SIZE
    header = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)  # 1 bit, greyscale
    return b"\x89PNG\r\n\x1a\n" + b"".join(
        _chunk(kind, data)
        for kind, data in ((b"IHDR", header), (b"IDAT", zlib.compress(b"".join(rows), 6)),
                           (b"IEND", b""))
    )


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


@functools.lru_cache(maxsize=64)
def _passes(booking_id: int, secret: str) -> tuple[tuple[str, str, str], ...]:
    return tuple(
        (kind, token, qr_data_url(token))
        for kind in PASS_KINDS
        for token in (pass_token(booking_id, kind, secret),)
    )


def passes_for(booking_id: int, secret: str) -> dict[str, tuple[str, str]]:
    """kind -> (token, data URL) for both passes of a booking (rendering is cached)."""
    return {kind: (token, url) for kind, token, url in _passes(booking_id, secret)}
