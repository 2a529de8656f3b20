"""Unit tests of the numpy reference (no server needed)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

from shrinkvec import codes


def test_binarize_is_msb_first_sign_bits() -> None:
    v = np.array([1, -2, 3, 0, 5, 6, -7, 8, 9], dtype=np.float32)
    packed = codes.binarize(v)
    assert codes.bits_to_str(packed, 9) == "101011011"
    assert packed.tolist() == [0b10101101, 0b10000000]


def test_binarize_prefix_and_center() -> None:
    v = np.array([1, -2, 3, 0, 5], dtype=np.float32)
    assert codes.bits_to_str(codes.binarize(v, 3), 3) == "101"
    assert codes.bits_to_str(codes.binarize(v, 5, [2, -3, 2, -1, 5]), 5) == "01110"
    # a center of dims elements works too, and gives the same bits as the full-length center
    assert codes.bits_to_str(codes.binarize(v, 3, [2, -3, 2]), 3) == "011"
    assert codes.binarize(v, 3, [2, -3, 2]).tolist() == codes.binarize(v, 3, [2, -3, 2, 9, 9]).tolist()


def test_binarize_batch_equals_rowwise() -> None:
    rng = np.random.default_rng(1)
    m = rng.standard_normal((20, 37)).astype(np.float32)
    center = rng.standard_normal(37).astype(np.float32)
    batch = codes.binarize_batch(m, 29, center)
    for row, code in zip(m, batch):
        assert code.tolist() == codes.binarize(row, 29, center).tolist()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (([1.0, 2.0], 0), "dims must be between 1 and 2, not 0"),
        (([1.0, 2.0], 3), "dims must be between 1 and 2, not 3"),
        (([1.0, math.nan],), "NaN not allowed in vector"),
        (([1.0, math.inf],), "infinite value not allowed in vector"),
        (([],), "vector must not be empty"),
        (([1.0, 2.0, 3.0], 2, [0.0] * 4), "center has 4 elements, expected 3 (the input's dimensions) or 2 (dims)"),
    ],
)
def test_binarize_errors(args: tuple[Any, ...], message: str) -> None:
    with pytest.raises(codes.CodeError) as err:
        codes.binarize(*args)
    assert str(err.value) == message


def test_hamming_common_prefix_and_count() -> None:
    a = codes.str_to_bits("1011")
    b = codes.str_to_bits("0100")
    assert codes.hamming(a, b, 4, 4) == 4
    assert codes.hamming(a, codes.str_to_bits("10"), 4, 2) == 0
    assert codes.hamming(a, b, 4, 4, 3) == 3
    with pytest.raises(codes.CodeError):
        codes.hamming(a, b, 4, 4, 5)


def test_bit_ip_is_signed_sum() -> None:
    code = codes.str_to_bits("101")
    # -(1*1 + 2*(-1) + 3*1) = -2; the query's 4th dimension is beyond the code and ignored
    assert codes.bit_ip(code, 3, [1, 2, 3, 4]) == -2.0
    with pytest.raises(codes.CodeError, match="code has 4 bits, more than the query's 3 dimensions"):
        codes.bit_ip(codes.str_to_bits("1111"), 4, [1, 2, 3])


def test_bit_ip_ranks_like_inner_product_with_sign_vector() -> None:
    rng = np.random.default_rng(2)
    docs = rng.standard_normal((50, 64)).astype(np.float32)
    q = rng.standard_normal(64).astype(np.float32)
    scores = [codes.bit_ip(codes.binarize(d), 64, q) for d in docs]
    expected = [-float(np.where(d > 0, 1.0, -1.0) @ q) for d in docs]
    np.testing.assert_allclose(scores, expected, rtol=1e-6)


def test_prefix_cosine_distance() -> None:
    assert codes.prefix_cosine_distance([1, 2, 3, 4], [1, 2]) == pytest.approx(0.0, abs=1e-12)
    assert codes.prefix_cosine_distance([1, 0, 3, 4], [0, 1, 5, 5], 2) == pytest.approx(1.0)
    assert math.isnan(codes.prefix_cosine_distance([0, 0, 1], [1, 2, 3], 2))


def test_quantize_int8_clips_and_rounds_half_even() -> None:
    lo, hi = [0.0] * 5, [1.0] * 5
    q = codes.quantize_int8([0, 0.5, 1, -5, 5], lo, hi)
    assert q.dtype == np.int8
    assert q.tolist() == [-128, -1, 127, -128, 127]  # clipped at both ends, never wrapped
    # a zero-width range maps to -128 and dequantizes to lo
    assert codes.quantize_int8([0.5], [0.5], [0.5]).tolist() == [-128]
    assert codes.dequantize_int8([-128], [0.5], [0.5]).tolist() == [0.5]


def test_dequantize_error_is_at_most_half_a_step() -> None:
    rng = np.random.default_rng(3)
    m = rng.standard_normal((200, 48)).astype(np.float32)
    r = codes.int8_ranges(m)
    step = codes.int8_scale(r)
    for row in m[:20]:
        back = codes.dequantize_int8(codes.quantize_int8(row, r.lo, r.hi), r.lo, r.hi)
        assert np.all(np.abs(back - row) <= step / 2 * (1 + 1e-5) + 1e-7)


def test_int8_ranges_order_statistics() -> None:
    m = np.stack([np.arange(1, 101, dtype=np.float32), -np.arange(1, 101, dtype=np.float32)], axis=1)
    r = codes.int8_ranges(m)
    assert r.lo.tolist() == [1, -100] and r.hi.tolist() == [100, -1]
    r90 = codes.int8_ranges(m, 0.9)
    assert r90.lo.tolist() == [5, -96] and r90.hi.tolist() == [95, -6]
    with pytest.raises(codes.CodeError, match="coverage must be greater than 0"):
        codes.int8_ranges(m, 0.0)


def test_check_ranges_errors() -> None:
    with pytest.raises(codes.CodeError, match=r"lo\[2\] = 2 is greater than hi\[2\] = 1"):
        codes.check_ranges([0, 2], [1, 1], 2)
    with pytest.raises(codes.CodeError, match="lo and hi must have 2 elements, not 3 and 3"):
        codes.check_ranges([0, 0, 0], [1, 1, 1], 2)


def test_ranges_too_wide_for_real_are_rejected() -> None:
    with pytest.raises(codes.CodeError, match="range .* of dimension 1 is too wide: hi - lo overflows real"):
        codes.quantize_int8([1.0], [-3e38], [3e38])
