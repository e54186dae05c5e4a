"""shared/qr_codewords.py makes exactly the codewords qrcode's own create_data makes: a pass
drawn by this version and one drawn by an earlier one (or by qrcode alone) are the same
image (tests/unit/test_passes.py pins two images byte for byte)."""

import random

import pytest
from qrcode import exceptions, util
from qrcode.constants import ERROR_CORRECT_H, ERROR_CORRECT_L, ERROR_CORRECT_M, ERROR_CORRECT_Q

from shared.passes import PASS_KINDS, pass_token
from shared.qr_codewords import codewords

LEVELS = (ERROR_CORRECT_L, ERROR_CORRECT_M, ERROR_CORRECT_Q, ERROR_CORRECT_H)
ALPHANUMERIC = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:"


def chunks(text: str, minimum: int = 20) -> list:
    return list(util.optimal_data_chunks(text, minimum=minimum))  # as QRCode.add_data splits


def test_pass_tokens_give_qrcodes_own_codewords():
    rng = random.Random(7)
    tokens = [pass_token(rng.randrange(1, 2**63), rng.choice(PASS_KINDS), str(rng.random()))
              for _ in range(1000)]
    tokens += [pass_token(b, k, "secret") for b in (1, 9, 10**9, 2**63 - 1) for k in PASS_KINDS]
    # shaped like tokens: a MAC with 20+ digits in a row (a numeric segment), and a long
    # booking id (its prefix an alphanumeric one)
    tokens += ["A6P1.5.return.0123456789012345678901abcdefabcd",
               "A6P1.9223372036854775807.collection.0123456789abcdef0123456789abcdef"]
    modes = set()
    for token in tokens:
        data = chunks(token)
        modes.update(d.mode for d in data)
        assert codewords(6, ERROR_CORRECT_M, data) == util.create_data(6, ERROR_CORRECT_M, data)
    assert modes == {util.MODE_NUMBER, util.MODE_ALPHA_NUM, util.MODE_8BIT_BYTE}


@pytest.mark.parametrize("level", LEVELS)
def test_every_segment_kind_version_and_level(level):
    rng = random.Random(level)
    texts = ["".join(rng.choice(ALPHANUMERIC + "abcé") for _ in range(rng.randrange(1, 80)))
             for _ in range(20)]
    texts += ["7" * n for n in (1, 2, 3, 4, 40)] + ["AB" * 15, "A", "", "0" * 25 + "x"]
    for version in (1, 2, 5, 6, 7, 10, 16):  # 5, 7, 10, 16: blocks of two sizes
        for text in texts:
            for minimum in (4, 20):
                data = chunks(text, minimum)
                try:
                    want = util.create_data(version, level, data)
                except exceptions.DataOverflowError:
                    with pytest.raises(exceptions.DataOverflowError):
                        codewords(version, level, data)
                    continue
                assert codewords(version, level, data) == want, (version, text)
