"""The codewords of a QR code (data and Reed-Solomon error correction, interleaved): what
qrcode's `util.create_data` returns, computed without its Python call per bit.

qrcode writes the data a bit at a time (`BitBuffer.put_bit`) and divides polynomials as
lists, recursively: 0.6 ms of the 0.9 a pass's QR code took, and a booking draws two. Here
the bits go into one integer and the division is a shift register over a table per
generator polynomial. qrcode still decides everything that shapes the code: how the text is
split into numeric, alphanumeric and byte segments (`optimal_data_chunks`), how each
segment is written (`QRData.write`), the block structure, the generator polynomial, and it
places the codewords on the grid. tests/unit/test_qr_codewords.py holds this to qrcode's
own result on every kind of segment.
"""

from __future__ import annotations

import functools

from qrcode import base, exceptions, util

_PADDING = (0xEC, 0x11)  # the QR spec's alternating pad bytes (qrcode's PAD0, PAD1)


class _Bits:
    """qrcode's BitBuffer as `QRData.write` uses it (`put`), the bits kept in one integer."""

    __slots__ = ("value", "length")

    def __init__(self) -> None:
        self.value = 0
        self.length = 0

    def put(self, num: int, length: int) -> None:
        self.value = (self.value << length) | (num & ((1 << length) - 1))
        self.length += length


def codewords(version: int, error_correction: int, data_list: list[util.QRData]) -> list[int]:
    """`util.create_data(version, error_correction, data_list)`, the same list of ints."""
    bits = _Bits()
    for data in data_list:
        bits.put(data.mode, 4)
        bits.put(len(data), util.length_in_bits(data.mode, version))
        data.write(bits)
    blocks = base.rs_blocks(version, error_correction)
    bit_limit = sum(block.data_count * 8 for block in blocks)
    if bits.length > bit_limit:
        raise exceptions.DataOverflowError(
            f"Code length overflow. Data size ({bits.length}) > size available ({bit_limit})")
    bits.put(0, min(bit_limit - bits.length, 4))  # the terminator
    bits.put(0, -bits.length % 8)  # to a whole byte
    for i in range((bit_limit - bits.length) // 8):
        bits.put(_PADDING[i % 2], 8)
    data = bits.value.to_bytes(bit_limit // 8, "big")

    data_blocks, ec_blocks, offset = [], [], 0
    for block in blocks:
        chunk = data[offset:offset + block.data_count]
        offset += block.data_count
        data_blocks.append(chunk)
        ec_blocks.append(_error_correction(chunk, block.total_count - block.data_count))
    return _interleaved(data_blocks) + _interleaved(ec_blocks)


def _interleaved(blocks: list[bytes]) -> list[int]:
    """First byte of every block, then the second of every block...: shorter blocks end first."""
    longest = max(len(b) for b in blocks)
    return [b[i] for i in range(longest) for b in blocks if i < len(b)]


def _error_correction(data: bytes, count: int) -> bytes:
    """The remainder of data·x^count divided by the generator polynomial of degree count."""
    table = _multiples(count)
    top_shift = 8 * (count - 1)
    mask = (1 << (8 * count)) - 1
    remainder = 0
    for byte in data:
        remainder = ((remainder << 8) & mask) ^ table[byte ^ (remainder >> top_shift)]
    return remainder.to_bytes(count, "big")


@functools.cache
def _multiples(count: int) -> tuple[int, ...]:
    """For each byte f, f times the generator polynomial (its leading 1 dropped) in GF(256),
    its `count` coefficients as one big-endian integer."""
    generator = base.Polynomial([1], 0)
    for i in range(count):
        generator = generator * base.Polynomial([1, base.gexp(i)], 0)
    coefficients = list(generator)[1:]
    return (0, *(
        int.from_bytes(bytes(
            base.gexp(base.glog(f) + base.glog(c)) if c else 0 for c in coefficients), "big")
        for f in range(1, 256)))
