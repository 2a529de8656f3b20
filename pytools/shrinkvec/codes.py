"""The numpy reference of every shrinkvec code: the definition the C extension, the loader and the
query generator share.

Conventions (the C code in extension/src follows them bit for bit):

- Vectors are float32; halfvec inputs are widened to float32 first. Arithmetic on codes happens in
  float32 in the order written here (no fused multiply-add).
- Bit codes are packed MSB-first (``np.packbits`` with bitorder="big"), as in PostgreSQL's ``bit``
  type and pgvector's ``binary_quantize``: bit i is ``(byte[i // 8] >> (7 - i % 8)) & 1``.
- Codes (bits, Hamming distances, int8 values, ranges) are exact: the C code gives the same
  values at every SIMD level. Float distances are computed here in float64; the C code accumulates
  in float32 as pgvector does (in SIMD lanes, with FMA on AVX2/AVX-512), so it agrees within float32
  accumulation error, relative to the sum of the magnitudes involved, and its last bits can differ
  between kernel levels. Squared norms outside float32's range (|x| below ~1e-19 or above ~1e19
  per element) give NaN in C, as in pgvector.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
import numpy.typing as npt

from shrinkvec.errors import ShrinkvecError

MAX_DIM = 16000

FloatArray = npt.NDArray[np.float32]
ByteArray = npt.NDArray[np.uint8]


class CodeError(ShrinkvecError, ValueError):
    """An input the codes are not defined for (the C functions raise the same errors)."""


def as_float32(v: npt.ArrayLike, what: str = "vector") -> FloatArray:
    """A finite 1-D float32 array of 1..MAX_DIM elements, or CodeError naming the problem."""
    a = _float32(v)
    if a.ndim != 1:
        raise CodeError(f"{what} must have one dimension, not {a.ndim}")
    if a.size == 0:
        raise CodeError(f"{what} must not be empty")
    if a.size > MAX_DIM:
        raise CodeError(f"{what} has {a.size} elements, more than the limit of {MAX_DIM}")
    return _finite(a, what)


def _float32(v: npt.ArrayLike) -> FloatArray:
    """v as float32 (float16 widened exactly first)."""
    a = np.asarray(v)
    if a.dtype == np.float16:
        a = a.astype(np.float32)
    return np.asarray(a, dtype=np.float32)


def _finite(a: FloatArray, what: str) -> FloatArray:
    """a, or CodeError when it holds a NaN or an infinity."""
    if np.isnan(a).any():
        raise CodeError(f"NaN not allowed in {what}")
    if np.isinf(a).any():
        raise CodeError(f"infinite value not allowed in {what}")
    return a


# ---------------------------------------------------------------------------------------------
# Sign bits
# ---------------------------------------------------------------------------------------------


def binarize(v: npt.ArrayLike, dims: int | None = None, center: npt.ArrayLike | None = None) -> ByteArray:
    """Sign bits of (v - center) over the first `dims` dims, packed MSB-first.

    Bit i is 1 when ``v[i] - center[i] > 0`` in float32 (``v[i] > 0`` without a center), so the
    default equals pgvector's ``binary_quantize``. `center` has v's length or `dims` elements.
    """
    x = as_float32(v)
    full = x.size
    n = full if dims is None else int(dims)
    if n < 1 or n > full:
        raise CodeError(f"dims must be between 1 and {full}, not {n}")
    if center is None:
        return np.packbits(x[:n] > 0, bitorder="big")
    c = as_float32(center, "center")
    if c.size not in (full, n):
        raise CodeError(f"center has {c.size} elements, expected {full} (the input's dimensions) or {n} (dims)")
    x = x[:n] - c[:n]
    return np.packbits(x > 0, bitorder="big")


def binarize_batch(m: npt.ArrayLike, dims: int | None = None, center: npt.ArrayLike | None = None) -> ByteArray:
    """binarize() of every row of a 2-D array, as an (n, ceil(dims/8)) uint8 array."""
    x = np.asarray(m, dtype=np.float32)
    if x.ndim != 2:
        raise CodeError(f"expected a 2-D array, not {x.ndim}-D")
    n = x.shape[1] if dims is None else int(dims)
    if n < 1 or n > x.shape[1]:
        raise CodeError(f"dims must be between 1 and {x.shape[1]}, not {n}")
    x = x[:, :n]
    if center is not None:
        x = x - as_float32(center, "center")[:n]
    return np.packbits(x > 0, axis=1, bitorder="big")


def unpack_bits(code: npt.ArrayLike, nbits: int) -> npt.NDArray[np.uint8]:
    """The first nbits bits of a packed code, one 0/1 value per element."""
    return np.unpackbits(np.asarray(code, dtype=np.uint8), bitorder="big")[:nbits]


def bits_to_str(code: npt.ArrayLike, nbits: int) -> str:
    """A packed code as PostgreSQL's text form of ``bit(nbits)``, e.g. '1011'."""
    return "".join("1" if b else "0" for b in unpack_bits(code, nbits))


def str_to_bits(text: str) -> ByteArray:
    """PostgreSQL's text form of a bit string, packed MSB-first."""
    return np.packbits(np.frombuffer(text.encode(), dtype=np.uint8) - ord("0"), bitorder="big")


def hamming(a: npt.ArrayLike, b: npt.ArrayLike, nbits_a: int, nbits_b: int, nbits: int | None = None) -> int:
    """Hamming distance over the first `nbits` bits (default: the common prefix of the two codes)."""
    shorter = min(nbits_a, nbits_b)
    n = shorter if nbits is None else int(nbits)
    if n < 0 or n > shorter:
        raise CodeError(f"bit count {n} is out of range: the codes have {nbits_a} and {nbits_b} bits")
    return int(np.count_nonzero(unpack_bits(a, n) != unpack_bits(b, n)))


def bit_ip(code: npt.ArrayLike, nbits: int, q: npt.ArrayLike) -> float:
    """Asymmetric distance of a float query to a bit code: -(sum_{i<nbits} q_i * (2*b_i - 1))."""
    qf = as_float32(q, "query")
    if nbits > qf.size:
        raise CodeError(f"code has {nbits} bits, more than the query's {qf.size} dimensions")
    signs = unpack_bits(code, nbits).astype(np.float64) * 2 - 1
    return float(-(qf[:nbits].astype(np.float64) * signs).sum())


# ---------------------------------------------------------------------------------------------
# Prefix cosine
# ---------------------------------------------------------------------------------------------


def cosine_distance(a: npt.ArrayLike, b: npt.ArrayLike) -> float:
    """1 - cos(a, b) clamped to [0, 2]; NaN when either norm is zero (as pgvector's <=>)."""
    x = np.asarray(a, dtype=np.float64)
    y = np.asarray(b, dtype=np.float64)
    denom = math.sqrt(float(x @ x) * float(y @ y))
    if denom == 0.0:
        return math.nan
    return 1.0 - min(1.0, max(-1.0, float(x @ y) / denom))


def prefix_cosine_distance(a: npt.ArrayLike, b: npt.ArrayLike, dims: int | None = None) -> float:
    """Cosine distance over the first `dims` dims (default: the shorter input's length)."""
    x = as_float32(a)
    y = as_float32(b)
    shorter = min(x.size, y.size)
    n = shorter if dims is None else int(dims)
    if n < 1 or n > shorter:
        raise CodeError(f"dims must be between 1 and {shorter}, not {n}")
    return cosine_distance(x[:n], y[:n])


# ---------------------------------------------------------------------------------------------
# int8 codes
# ---------------------------------------------------------------------------------------------


class Int8Ranges(NamedTuple):
    """Per-dimension calibration ranges of an int8 code."""

    lo: FloatArray
    hi: FloatArray


def check_ranges(lo: npt.ArrayLike, hi: npt.ArrayLike, dim: int) -> Int8Ranges:
    """Checked float32 ranges: dim elements each, finite, lo <= hi."""
    lo32 = as_float32(lo, "lo")
    hi32 = as_float32(hi, "hi")
    if lo32.size != dim or hi32.size != dim:
        raise CodeError(f"lo and hi must have {dim} elements, not {lo32.size} and {hi32.size}")
    bad = np.nonzero(lo32 > hi32)[0]
    if bad.size:
        i = int(bad[0])
        raise CodeError(f"lo[{i + 1}] = {lo32[i]:g} is greater than hi[{i + 1}] = {hi32[i]:g}")
    with np.errstate(over="ignore"):
        wide = np.nonzero(np.isinf(hi32 - lo32))[0]
    if wide.size:
        i = int(wide[0])
        raise CodeError(f"range [{lo32[i]:g}, {hi32[i]:g}] of dimension {i + 1} is too wide: hi - lo overflows real")
    return Int8Ranges(lo32, hi32)


def int8_scale(r: Int8Ranges) -> FloatArray:
    """Per-dimension step: (hi - lo) / 255 in float32."""
    return (r.hi - r.lo) / np.float32(255.0)


def quantize_int8(v: npt.ArrayLike, lo: npt.ArrayLike, hi: npt.ArrayLike) -> npt.NDArray[np.int8]:
    """int8 code: rint(clip((v - lo) / scale, 0, 255)) - 128 in float32, and -128 where scale is 0.

    Values outside [lo, hi] are clipped, never wrapped. rint rounds half to even.
    """
    x = as_float32(v)
    return np.asarray(quantize_int8_batch(x[None, :], lo, hi)[0], dtype=np.int8)


def quantize_int8_batch(m: npt.ArrayLike, lo: npt.ArrayLike, hi: npt.ArrayLike) -> npt.NDArray[np.int8]:
    """quantize_int8() of every row of a 2-D float array."""
    x = np.asarray(m, dtype=np.float32)
    if x.ndim != 2:
        raise CodeError(f"expected a 2-D array, not {x.ndim}-D")
    r = check_ranges(lo, hi, x.shape[1])
    scale = int8_scale(r)
    zero = scale == 0
    safe = np.where(zero, np.float32(1.0), scale)
    with np.errstate(over="ignore"):
        t = (x - r.lo) / safe
    t = np.clip(t, np.float32(0.0), np.float32(255.0))
    q = np.rint(t).astype(np.int32) - 128
    q[:, zero] = -128
    return q.astype(np.int8)


def dequantize_int8(code: npt.ArrayLike, lo: npt.ArrayLike, hi: npt.ArrayLike) -> FloatArray:
    """The vector an int8 code stands for: lo + (q + 128) * scale in float32."""
    c = np.asarray(code, dtype=np.int8)
    r = check_ranges(lo, hi, c.size)
    with np.errstate(over="ignore"):
        out = r.lo + (c.astype(np.int32) + 128).astype(np.float32) * int8_scale(r)
    bad = np.flatnonzero(np.isinf(out))
    if bad.size:
        raise CodeError(f"dequantized value of dimension {int(bad[0]) + 1} is out of range for type real")
    return out


def int8_ip_distance(code: npt.ArrayLike, q: npt.ArrayLike, lo: npt.ArrayLike, hi: npt.ArrayLike) -> float:
    """Negative inner product of a float query and the dequantized code (as pgvector's <#>)."""
    d = dequantize_int8(code, lo, hi)
    qf = as_float32(q, "query")
    if qf.size != d.size:
        raise CodeError(f"different dimensions {d.size} and {qf.size}")
    return -float(d.astype(np.float64) @ qf.astype(np.float64))


def int8_cosine_distance(code: npt.ArrayLike, q: npt.ArrayLike, lo: npt.ArrayLike, hi: npt.ArrayLike) -> float:
    """Cosine distance of a float query and the dequantized code."""
    d = dequantize_int8(code, lo, hi)
    qf = as_float32(q, "query")
    if qf.size != d.size:
        raise CodeError(f"different dimensions {d.size} and {qf.size}")
    return cosine_distance(d, qf)


def order_index(n: int, p: float) -> int:
    """Index of the order statistic for probability p among n sorted values: ceil(n*p) - 1, clamped."""
    k = math.ceil(n * p) - 1
    return min(max(k, 0), n - 1)


def int8_ranges(m: npt.ArrayLike, coverage: float | None = None) -> Int8Ranges:
    """Per-dimension (lo, hi) of a 2-D array: min/max, or the central `coverage` fraction.

    With a coverage c, lo and hi are the order statistics order_index(n, (1-c)/2) and
    order_index(n, 1-(1-c)/2) of each column (actual values, no interpolation).
    """
    x = np.asarray(m, dtype=np.float32)
    if x.ndim != 2 or x.shape[0] == 0:
        raise CodeError("int8_ranges needs a non-empty 2-D array")
    if coverage is None:
        return Int8Ranges(x.min(axis=0), x.max(axis=0))
    if not (0.0 < coverage <= 1.0):
        raise CodeError(f"coverage must be greater than 0 and at most 1, not {coverage:g}")
    tail = (1.0 - coverage) / 2.0
    s = np.sort(x, axis=0)
    n = x.shape[0]
    return Int8Ranges(s[order_index(n, tail)].copy(), s[order_index(n, 1.0 - tail)].copy())


# --- The index's rotation (vector opclasses, WITH (rotate = on); extension/src/kernels/rotate.c) -------------

ROTATION_ROUNDS = 2  # rounds of the index's rotation (stored in the index: meta.rotation_rounds)
ROTATION_SEED = 0x5348524B56454331  # the seed every index is built with (stored: meta.rotation_seed)
_MASK64 = (1 << 64) - 1


def _splitmix64(state: int) -> tuple[int, int]:
    """One step of splitmix64: (next state, output), both 64-bit."""
    state = (state + 0x9E3779B97F4A7C15) & _MASK64
    z = state
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK64
    return state, z ^ (z >> 31)


def rotation_block(dims: int) -> int:
    """The Hadamard block of the rotation over dims: the largest power of two <= dims."""
    return 1 << (dims.bit_length() - 1)


def rotation_signs(dims: int, seed: int = ROTATION_SEED, rounds: int = ROTATION_ROUNDS) -> npt.NDArray[np.bool_]:
    """The sign flips of the rotation, one row of dims booleans (True: negate) per step, in order.

    Each round has two steps (head and tail) when dims is not a power of two, one otherwise. A step's
    flips are bit i % 64 of the (i // 64)-th next output of splitmix64 from seed (LSB first).
    """
    steps = rounds * (1 if rotation_block(dims) == dims else 2)
    words = -(-dims // 64)
    state = seed & _MASK64
    out = np.zeros(steps * words, dtype=np.uint64)
    for k in range(steps * words):
        state, out[k] = _splitmix64(state)
    bits = np.unpackbits(out.view(np.uint8), bitorder="little")  # the words' bits, LSB first (little-endian)
    return bits.reshape(steps, words * 64)[:, :dims].astype(bool)


def _fwht(y: npt.NDArray[np.floating], scale: np.floating) -> npt.NDArray[np.floating]:
    """The normalised Walsh-Hadamard transform along the last axis (a power-of-two length), butterflies
    (a+b, a-b) in stages h = 1, 2, 4, ... (the C loop's order; each operation exact-rounded in y's dtype),
    then times scale."""
    m = y.shape[-1]
    lead = y.shape[:-1]
    h = 1
    while h < m:
        v = y.reshape(*lead, m // (2 * h), 2, h)
        y = np.concatenate([v[..., 0, :] + v[..., 1, :], v[..., 0, :] - v[..., 1, :]], axis=-1).reshape(*lead, m)
        h *= 2
    return y * scale


def _rotation_steps(d: int, inverse: bool) -> list[tuple[int, int]]:
    """The (step, start) of each sign flip and Hadamard block of a round, in the order applied."""
    m = rotation_block(d)
    starts = (0,) if m == d else (0, d - m)
    pairs = list(enumerate(starts))
    return pairs[::-1] if inverse else pairs


def _rotate_in(y: npt.NDArray[np.floating], seed: int, rounds: int) -> npt.NDArray[np.floating]:
    """The forward steps in y's dtype (float32 or float64)."""
    d = y.shape[-1]
    m = rotation_block(d)
    scale = y.dtype.type(1.0 / math.sqrt(float(m)))
    signs = rotation_signs(d, seed, rounds)
    per_round = len(_rotation_steps(d, False))
    with np.errstate(over="ignore", invalid="ignore"):
        for r in range(rounds):
            for i, start in _rotation_steps(d, False):
                y = np.where(signs[r * per_round + i], -y, y)
                y[..., start:start + m] = _fwht(y[..., start:start + m], scale)
    return y


def rotate(x: npt.ArrayLike, seed: int = ROTATION_SEED, rounds: int = ROTATION_ROUNDS) -> FloatArray:
    """The index's random orthogonal rotation of the coded dims x (float32 in, float32 out; a 2-D array
    is rotated row by row).

    m = rotation_block(d). Each round: flip the signs of the step's dims, then a normalised Hadamard
    transform (times 1/sqrt(m)) of x[0:m]; when m < d, flip again and transform x[d-m:d] the same way.
    Computed in float32; a row with a non-finite result (values near float's limit overflowed a sum) is
    computed again in float64, where a finite input cannot overflow, clamped to +-FLT_MAX (a vector longer
    than float's range; the index marks it unknown) and rounded to float32 once.
    Orthogonal: every distance and inner product is kept, and a Hadamard step spreads each coordinate's
    variance evenly over its block.
    """
    xv = np.array(x, dtype=np.float32)
    y = _rotate_in(xv.copy(), seed, rounds)
    bad = ~np.isfinite(y).all(axis=-1)
    if np.any(bad):
        f32max = float(np.finfo(np.float32).max)
        wide = np.clip(_rotate_in(xv.astype(np.float64), seed, rounds), -f32max, f32max).astype(np.float32)
        y = np.where(bad[..., None], wide, y) if y.ndim > 1 else wide
    return np.asarray(y, dtype=np.float32)


def unrotate(y: npt.ArrayLike, seed: int = ROTATION_SEED, rounds: int = ROTATION_ROUNDS) -> FloatArray:
    """The inverse of rotate (its transpose: the steps in reverse order), in float64, rounded once."""
    z = np.array(y, dtype=np.float32).astype(np.float64)
    d = z.shape[-1]
    m = rotation_block(d)
    scale = 1.0 / math.sqrt(float(m))
    signs = rotation_signs(d, seed, rounds)
    per_round = len(_rotation_steps(d, False))
    with np.errstate(over="ignore", invalid="ignore"):
        for r in reversed(range(rounds)):
            for i, start in _rotation_steps(d, True):
                z[..., start:start + m] = _fwht(z[..., start:start + m], np.float64(scale))
                z = np.where(signs[r * per_round + i], -z, z)
        return z.astype(np.float32)


# --- The index's refine codes (WITH (refine = B); extension/src/index/svindex.h, "Refine codes") ---------------

REFINE_BITS = (2, 4, 8)


class RefineCode(NamedTuple):
    """A refine code of x against centroid c: packed values u, and x_i - c_i ~ lo + step * u_i.

    The grid spans the range of r = x - c clipped to mean +- k sd of r (k = 1.5, 2.5, 4 for 2, 4, 8 bits).
    """

    code: ByteArray  # ceil(dims * bits / 8) bytes, B bits a dim, most significant first
    lo: np.float32
    step: np.float32
    norm2: np.float32  # |x|^2 (summed in float64)
    err2: np.float32  # |r - (lo + step * u)|^2: float32 terms summed in float64, in order


def refine_code(x: npt.ArrayLike, c: npt.ArrayLike, bits: int) -> RefineCode:
    """The refine code the index stores for the coded dims x of a row in the list of centroid c."""
    if bits not in REFINE_BITS:
        raise CodeError(f"refine must be 0, 2, 4 or 8 bits per dimension, not {bits}")
    xv = as_float32(x)
    cv = as_float32(c, "centroid")
    if cv.size != xv.size:
        raise CodeError(f"different vector dimensions {xv.size} and {cv.size}")
    r = xv - cv
    k = {2: 1.5, 4: 2.5, 8: 4.0}[bits]
    r64 = r.astype(np.float64)
    mean = float(np.cumsum(r64)[-1]) / r.size  # summed in order, as the C code does
    sd = math.sqrt(float(np.cumsum((r64 - mean) * (r64 - mean))[-1]) / r.size)
    lo = np.float32(max(float(r.min()), mean - k * sd))
    hi = np.float32(min(float(r.max()), mean + k * sd))
    top = np.float32((1 << bits) - 1)
    step = np.float32(hi - lo) / top
    if step > 0:
        t = np.rint((r - lo) / step)
        u = np.clip(t, 0, top).astype(np.uint8)
    else:
        u = np.zeros(xv.size, dtype=np.uint8)
        step = np.float32(0)
    planes = (u[:, None] >> np.arange(bits - 1, -1, -1, dtype=np.uint8)) & 1
    code = np.packbits(planes.astype(np.uint8).ravel(), bitorder="big")
    norm2 = np.float32(np.dot(xv.astype(np.float64), xv.astype(np.float64)))
    e = (r - (lo + np.float32(step) * u.astype(np.float32))).astype(np.float64)
    err2 = np.float32(np.cumsum(e * e)[-1])
    return RefineCode(code, lo, np.float32(step), norm2, err2)


def refine_values(code: npt.ArrayLike, dims: int, bits: int) -> npt.NDArray[np.uint8]:
    """The values u of a packed refine code."""
    planes = np.unpackbits(np.asarray(code, dtype=np.uint8), bitorder="big")[: dims * bits].reshape(dims, bits)
    weights = (1 << np.arange(bits - 1, -1, -1)).astype(np.uint16)
    return (planes.astype(np.uint16) @ weights).astype(np.uint8)


# --- The index's scan arithmetic: blocked codes and nibble tables (extension/src/kernels.h) ---------

FS_LANES = 32  # codes per block
FS_LEVEL = 15  # quantized query values are -FS_LEVEL..FS_LEVEL
FS_BIAS = 4 * FS_LEVEL  # added to every nibble table entry (entries 0..120, a byte's two <= 240)


class FsQuery(NamedTuple):
    """The quantized weights of a scan: w ~ delta * v, with err_l1 = sum |w - delta * v|."""

    v: npt.NDArray[np.int32]
    delta: np.float32
    vsum: int
    err_l1: np.float32


def fs_blocks(codes: npt.ArrayLike, lanes: int = FS_LANES) -> ByteArray:
    """The blocked layout of n codes (n x nbytes): blocks of `lanes` codes, byte-major within a block
    (byte p of code j of a block at p * lanes + j); the last block is padded with zero codes."""
    c = np.asarray(codes, dtype=np.uint8)
    n, nbytes = c.shape
    nblocks = -(-n // lanes)
    padded = np.zeros((nblocks * lanes, nbytes), dtype=np.uint8)
    padded[:n] = c
    return np.ascontiguousarray(padded.reshape(nblocks, lanes, nbytes).transpose(0, 2, 1)).reshape(-1)


def fs_quantize(w: npt.ArrayLike) -> FsQuery:
    """Quantize weights to v = rint(w / delta) clipped to +-FS_LEVEL, delta = max|w| / FS_LEVEL (1 if w is 0).

    float32 throughout, in this order; rint rounds half to even (C's rintf)."""
    x = np.asarray(w, dtype=np.float32)
    maxabs = np.float32(np.abs(x).max()) if x.size else np.float32(0)
    delta = np.float32(maxabs / np.float32(FS_LEVEL)) if maxabs > 0 else np.float32(1)
    v = np.clip(np.rint(x / delta), -FS_LEVEL, FS_LEVEL).astype(np.int32)
    err = np.float32(0)
    for e in np.abs(x - delta * v.astype(np.float32)):  # accumulated in float32, in order, as in C
        err = np.float32(err + e)
    return FsQuery(v, delta, int(v.sum()), err)


def _nibble_sums(vals: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
    """For 4 per-bit values (nibble bit 3 first), the sum over the set bits of every nibble 0..15."""
    bits = (np.arange(16)[:, None] >> np.array([3, 2, 1, 0])[None, :]) & 1
    return np.asarray(bits @ vals, dtype=np.int64)


def fs_tables_ip(w: npt.ArrayLike, nbytes: int) -> tuple[npt.NDArray[np.uint8], FsQuery]:
    """Inner product tables (nbytes x 2 x 16: high nibble, low nibble) of the quantized weights, with FS_BIAS."""
    fq = fs_quantize(w)
    v = np.zeros(nbytes * 8, dtype=np.int64)
    v[: fq.v.size] = fq.v
    t = np.empty((nbytes, 2, 16), dtype=np.uint8)
    for p in range(nbytes):
        t[p, 0] = _nibble_sums(v[8 * p : 8 * p + 4]) + FS_BIAS
        t[p, 1] = _nibble_sums(v[8 * p + 4 : 8 * p + 8]) + FS_BIAS
    return t, fq


def fs_tables_hamming(query: npt.ArrayLike, qbits: int, nbytes: int) -> npt.NDArray[np.uint8]:
    """Hamming tables (nbytes x 2 x 16): popcount((nibble ^ query nibble) & mask of the first qbits bits)."""
    q = np.zeros(nbytes, dtype=np.uint8)
    qa = np.asarray(query, dtype=np.uint8)
    q[: qa.size] = qa
    mask = np.packbits((np.arange(nbytes * 8) < qbits).astype(np.uint8))
    n = np.arange(16, dtype=np.uint8)
    t = np.empty((nbytes, 2, 16), dtype=np.uint8)
    for p in range(nbytes):
        for half, (qn, mn) in enumerate(((q[p] >> 4, mask[p] >> 4), (q[p] & 15, mask[p] & 15))):
            t[p, half] = np.unpackbits(((n ^ qn) & mn)[:, None], axis=1).sum(axis=1)
    return t


def fs_table_bytes(tables: npt.NDArray[np.uint8]) -> ByteArray:
    """The tables as the C kernels hold them: per pair of positions 128 bytes,
    [hi_2k, hi_2k, hi_2k+1, hi_2k+1, lo_2k, lo_2k, lo_2k+1, lo_2k+1] (nbytes even)."""
    nbytes = tables.shape[0]
    out = np.empty((nbytes // 2, 2, 2, 2, 16), dtype=np.uint8)  # pair, hi/lo, position, copy, entry
    t = tables.reshape(nbytes // 2, 2, 2, 16)  # pair, position, hi/lo, entry
    for copy in range(2):
        out[:, :, :, copy, :] = t.transpose(0, 2, 1, 3)
    return out.reshape(-1)


def fs_sums(codes: npt.ArrayLike, tables: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint32]:
    """The scan kernel's integer sums: for each code, sum over bytes p of hi_p[byte >> 4] + lo_p[byte & 15]."""
    c = np.asarray(codes, dtype=np.uint8)
    p = np.arange(c.shape[1])[None, :]
    t = tables.astype(np.uint32)
    return np.asarray((t[p, 0, c >> 4] + t[p, 1, c & 15]).sum(axis=1), dtype=np.uint32)


def fs_bound(sums: npt.ArrayLike, soff: int, alpha: npt.ArrayLike, r2: npt.ArrayLike | None,
             base: float, f: float, c0: float, c1: float) -> FloatArray:
    """The lower bound the scan tests against its k-th best score, in float32, in the C order, no FMA:
    t = c0 + c1 * (sums - soff); lb = (base + r2) + (f * alpha) * t."""
    s = (np.asarray(sums, dtype=np.int64) - soff).astype(np.float32)
    t = np.float32(c0) + np.float32(c1) * s
    a = np.asarray(alpha, dtype=np.float32)
    o = np.float32(base) + (np.zeros_like(a) if r2 is None else np.asarray(r2, dtype=np.float32))
    return (o + (np.float32(f) * a) * t).astype(np.float32)


def fs_keep(lb: npt.ArrayLike, tau: float) -> npt.NDArray[np.bool_]:
    """Which codes the scan keeps for a bound lb against its k-th best tau: all but those whose bound is a
    finite number above tau (a NaN or +Inf bound comes from factors that overflowed float32)."""
    b = np.asarray(lb, dtype=np.float32)
    with np.errstate(invalid="ignore"):
        keep: npt.NDArray[np.bool_] = ~(b > np.float32(tau)) | (b == np.float32(np.inf))
    return keep


# ---------------------------------------------------------------------------------------------
# Late interaction: token arrays, the multibit code and MaxSim (extension/src/maxsim.c)
# ---------------------------------------------------------------------------------------------

MAX_TOKENS = 1024  # the most tokens a query, document or multibit may have (SV_MAX_TOKENS)


def as_tokens(m: npt.ArrayLike, what: str = "document") -> FloatArray:
    """A (tokens, dim) float32 array of 1..MAX_TOKENS finite tokens of one dimension, or CodeError.

    The messages are the C functions' (``different vector dimensions 3 and 4`` for ragged input)."""
    if isinstance(m, (list, tuple)):
        if len(m) == 0:
            raise CodeError(f"{what} must not be empty")
        dims = [len(t) for t in m]
        for d in dims[1:]:
            if d != dims[0]:
                raise CodeError(f"different vector dimensions {dims[0]} and {d}")
    a = _float32(m)
    if a.ndim != 2:
        raise CodeError(f"{what} must be a 2-D array of tokens, not {a.ndim}-D")
    if a.shape[0] == 0:
        raise CodeError(f"{what} must not be empty")
    if a.shape[0] > MAX_TOKENS:
        raise CodeError(f"{what} has {a.shape[0]} tokens, more than the limit of {MAX_TOKENS}")
    if a.shape[1] == 0:
        raise CodeError("vector must have at least 1 dimension")
    if a.shape[1] > MAX_DIM:
        raise CodeError(f"vector cannot have more than {MAX_DIM} dimensions")
    return _finite(a, what)


def binarize_tokens(m: npt.ArrayLike, dims: int | None = None, center: npt.ArrayLike | None = None) -> ByteArray:
    """binarize(vector[] [, dims [, center]]): every token's sign bits, (tokens, ceil(dims/8)) uint8.

    The rule is binarize()'s: bit i of a token t is 1 when ``t[i] - center[i] > 0`` in float32."""
    x = as_tokens(m)
    full = x.shape[1]
    n = full if dims is None else int(dims)
    if n < 1 or n > full:
        raise CodeError(f"dims must be between 1 and {full}, not {n}")
    y = x[:, :n]
    if center is not None:
        c = as_float32(center, "center")
        if c.size not in (full, n):
            raise CodeError(f"center has {c.size} elements, expected {full} (the input's dimensions) or {n} (dims)")
        y = y - c[:n]
    return np.packbits(y > 0, axis=1, bitorder="big")


def multibit_str(codes: npt.ArrayLike, dims: int) -> str:
    """The text form of a multibit: one bit string per token, ``{1011,0110}``."""
    c = np.asarray(codes, dtype=np.uint8)
    return "{" + ",".join(bits_to_str(row, dims) for row in c) + "}"


def multibit_send(codes: npt.ArrayLike, dims: int) -> bytes:
    """The binary form of a multibit (COPY BINARY, send/recv): int16 tokens, int16 dims (big-endian),
    then ceil(dims/8) bytes per token, padding bits zero."""
    c = np.ascontiguousarray(np.asarray(codes, dtype=np.uint8))
    return int(c.shape[0]).to_bytes(2, "big") + int(dims).to_bytes(2, "big") + c.tobytes()


def multibit_bytes(codes: npt.ArrayLike, dims: int) -> int:
    """Bytes a multibit datum takes: a 4-byte varlena header, 4 bytes of counts, the packed codes."""
    c = np.asarray(codes, dtype=np.uint8)
    return 8 + int(c.shape[0]) * ((dims + 7) // 8)


def maxsim(q: npt.ArrayLike, d: npt.ArrayLike) -> float:
    """Exact MaxSim: sum over query tokens of the largest dot product with a document token (float64;
    the C code accumulates each dot product in float32, so it agrees within float32 accumulation error)."""
    qa = as_tokens(q, "query").astype(np.float64)
    da = as_tokens(d).astype(np.float64)
    if qa.shape[1] != da.shape[1]:
        raise CodeError(f"different vector dimensions {qa.shape[1]} and {da.shape[1]}")
    return float((qa @ da.T).max(axis=1).sum())


def maxsim_bits(q: npt.ArrayLike, codes: npt.ArrayLike, dims: int) -> float:
    """maxsim(vector[], multibit), exactly as C computes it.

    For each query token t: v = rint(t[:dims] / delta) clipped to +-FS_LEVEL with delta = max|t[:dims]| /
    FS_LEVEL (fs_quantize); the token's score is delta * max over doc tokens u of sum_i v_i * (2 u_i - 1),
    an integer times a float32; the scores are summed in float64 in query-token order."""
    qa = as_tokens(q, "query")
    if qa.shape[1] < dims:
        raise CodeError(f"code has {dims} dimensions, more than the query's {qa.shape[1]} dimensions")
    c = np.asarray(codes, dtype=np.uint8)
    signs = np.unpackbits(c, axis=1, bitorder="big")[:, :dims].astype(np.int64) * 2 - 1
    total = 0.0
    for t in qa:
        fq = fs_quantize(t[:dims])
        best = int((signs @ fq.v.astype(np.int64)).max())
        total += float(fq.delta) * float(best)
    return total


def flat_tokens(docs: list[FloatArray]) -> tuple[FloatArray, npt.NDArray[np.int64]]:
    """Documents as one (T, d) token array and offsets (n+1,): doc i is rows offsets[i]:offsets[i+1]."""
    offsets = np.zeros(len(docs) + 1, dtype=np.int64)
    offsets[1:] = np.cumsum([doc.shape[0] for doc in docs])
    return np.concatenate(docs, axis=0).astype(np.float32), offsets
