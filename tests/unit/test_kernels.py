"""The standalone kernels (the extension's own C, built with gcc) against numpy, at every SIMD level."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shrinkvec import codes as C

from kernels_build import Kernels  # devtools/, on the path by conftest

NBYTES = [1, 7, 8, 9, 16, 48, 63, 64, 65, 127, 128, 129, 192, 256, 257, 2000]


@pytest.fixture(scope="module")
def kernels(tmp_path_factory: pytest.TempPathFactory) -> Kernels:
    return Kernels.load(Path(tmp_path_factory.mktemp("kernels")))


def reference_hamming(codes: np.ndarray, query: np.ndarray) -> np.ndarray:
    return np.asarray(np.unpackbits(codes ^ query, axis=1).sum(axis=1), dtype=np.uint32)


@settings(max_examples=80, deadline=None)
@given(dims=st.integers(1, 800), bits=st.sampled_from([8, 4, 2]), seed=st.integers(0, 2**32 - 1),
       scale=st.sampled_from([1e-20, 1.0, 1e20]))
def test_code_dot_equals_numpy(kernels: Kernels, dims: int, bits: int, seed: int, scale: float) -> None:
    """The refine codes' inner product (sum q_i u_i, u_i the MSB-first bits-bit integers of the code)
    equals numpy's at every level, up to float32 summation order."""
    rng = np.random.default_rng(seed)
    q = (rng.standard_normal(dims) * scale).astype(np.float32)
    u = rng.integers(0, 1 << bits, dims)
    per = 8 // bits
    padded = np.zeros(-(-dims // per) * per, dtype=np.int64)
    padded[:dims] = u
    code = np.zeros(padded.size // per, dtype=np.uint8)
    for j in range(per):  # dim i * per + j sits at bit offset 8 - bits * (j + 1) of byte i
        code |= (padded[j::per] << (8 - bits * (j + 1))).astype(np.uint8)
    want = float(q.astype(np.float64) @ u.astype(np.float64))
    tol = 1e-5 * float(np.abs(q.astype(np.float64) * u).sum()) + 1e-45
    for level in LEVELS:
        if kernels.use(level) != level:
            continue
        got = kernels.lib.sv_code_dot(q.ctypes.data, code.ctypes.data, dims, bits)
        assert abs(got - want) <= tol, (level, got, want)
    kernels.use("avx512")


@settings(max_examples=60, deadline=None)
@given(nbytes=st.sampled_from(NBYTES), n=st.integers(0, 3000), seed=st.integers(0, 2**32 - 1), k=st.integers(0, 50))
def test_hamming_scan_and_topk(kernels: Kernels, nbytes: int, n: int, seed: int, k: int) -> None:
    rng = np.random.default_rng(seed)
    codes = rng.integers(0, 256, (n, nbytes), dtype=np.uint8)
    codes[rng.random(n) < 0.1] = 0  # duplicates make ties
    query = rng.integers(0, 256, nbytes, dtype=np.uint8)
    expected = reference_hamming(codes, query)
    for level in ["scalar", "avx2", "avx512"]:
        if kernels.use(level) != level:
            continue
        # k = n returns every code: the scan's distances, whole
        all_ids, all_dists = kernels.hamming_topk(codes, query, n)
        scanned = np.empty(n, dtype=np.uint32)
        scanned[all_ids] = all_dists
        assert np.array_equal(scanned, expected)
        ids, dists = kernels.hamming_topk(codes, query, k)
        order = np.lexsort((np.arange(n), expected))[:k]  # by distance, then by id
        assert np.array_equal(ids, order)
        assert np.array_equal(dists, expected[order])
    kernels.use("avx512")


# --- the index's scan kernel: blocked codes, nibble tables, threshold selection (codes.fs_*) ---

LEVELS = ["scalar", "avx2", "avx512"]
FS_NBYTES = [2, 8, 16, 48, 96, 128, 250, 256, 258, 512, 514, 2000]  # even; 256+ crosses a 16-bit chunk


@settings(max_examples=60, deadline=None)
@given(nbytes=st.sampled_from(FS_NBYTES), n=st.integers(1, 200), seed=st.integers(0, 2**32 - 1),
       cut=st.integers(0, 16), scale=st.sampled_from([1e-30, 1e-3, 1.0, 1e3, 1e30]))
def test_fs_inner_product_scan(kernels: Kernels, nbytes: int, n: int, seed: int, cut: int, scale: float) -> None:
    """Tables, sums and selection equal the numpy reference exactly at every level; the integer sum
    gives sum(v over set bits) and the bound err_l1 holds for the float inner product."""
    rng = np.random.default_rng(seed)
    nbits = max(1, nbytes * 8 - cut)
    w = (rng.standard_normal(nbits) * scale).astype(np.float32)
    if seed % 7 == 0:
        w[rng.random(nbits) < 0.5] = 0  # ties and zeros
    codes = rng.integers(0, 256, (n, nbytes), dtype=np.uint8)
    codes[:, -1] &= np.uint8((0xFF << min(cut, 8)) & 0xFF) if cut < 8 else 0  # padding bits are zero
    ref_tables, fq = C.fs_tables_ip(w, nbytes)
    ref = C.fs_sums(codes, ref_tables)
    bits = np.unpackbits(codes, axis=1)[:, :nbits]
    assert np.array_equal(ref.astype(np.int64) - 2 * C.FS_BIAS * nbytes, bits.astype(np.int64) @ fq.v)
    # the documented bound: |<w, s> - delta * (2 (S - 2 bias nbytes) - vsum)| <= err_l1, up to float32
    # rounding of err_l1 itself (the index adds 1e-4 * sum |w| of slack)
    s = bits.astype(np.float64) * 2 - 1
    exact = s @ w.astype(np.float64)
    est = float(fq.delta) * (2 * (ref.astype(np.float64) - 2 * C.FS_BIAS * nbytes) - fq.vsum)
    assert np.all(np.abs(exact - est) <= float(fq.err_l1) * (1 + 1e-5) + 1e-6 * float(np.abs(w).sum()) + 1e-30)
    blocks = C.fs_blocks(codes)
    nblocks = blocks.size // (32 * nbytes)
    alpha = rng.random(n).astype(np.float32)
    r2 = rng.random(n).astype(np.float32) if seed % 2 else None
    soff = 2 * C.FS_BIAS * nbytes
    c0, c1, base, f = float(-fq.delta * fq.vsum), float(2 * fq.delta), 0.5, -1.0
    lb = C.fs_bound(ref, soff, alpha, r2, base, f, c0, c1)
    tau = float(np.sort(lb)[min(n - 1, n // 3)])
    want = np.flatnonzero(C.fs_keep(lb, tau))
    assert np.array_equal(want, np.flatnonzero(lb <= np.float32(tau)))  # finite bounds: the plain test
    for level in LEVELS:
        if kernels.use(level) != level:
            continue
        tables, delta, vsum, err = kernels.fs_tables_ip(w, nbytes)
        assert np.array_equal(tables, C.fs_table_bytes(ref_tables))
        assert (np.float32(delta), vsum, np.float32(err)) == (fq.delta, fq.vsum, fq.err_l1)
        got = kernels.fs_scan(blocks, nblocks, nbytes, tables)
        assert np.array_equal(got[:n], ref)
        assert np.array_equal(got[n:], C.fs_sums(np.zeros((got.size - n, nbytes), np.uint8), ref_tables))
        assert np.array_equal(kernels.fs_select(ref, soff, alpha, r2, base, f, c0, c1, tau), want)
    row_major = np.ascontiguousarray(codes).reshape(-1)
    assert np.array_equal(kernels.fs_scan_lanes(row_major, n, 1, nbytes, C.fs_table_bytes(ref_tables)), ref)
    kernels.use("avx512")


@pytest.mark.parametrize("seed", range(6))
def test_fs_select_keeps_bounds_that_overflowed(kernels: Kernels, seed: int) -> None:
    """Factors that overflowed float32 (alpha or r2 infinite or near FLT_MAX, from values whose squares
    overflow) give NaN or infinite bounds: every level keeps them (they bound nothing), as codes.fs_keep."""
    rng = np.random.default_rng(seed)
    n = 100
    sums = rng.integers(0, 400, n).astype(np.uint32)
    alpha = rng.random(n).astype(np.float32)
    r2 = rng.random(n).astype(np.float32)
    alpha[::7] = np.inf
    alpha[3::11] = np.float32(3e38)
    r2[1::5] = np.inf
    r2[2::13] = np.float32(3.4e38)
    soff, c0, c1, base, f = 200, 0.0, 0.01, 0.5, -2.0
    with np.errstate(all="ignore"):
        lb = C.fs_bound(sums, soff, alpha, r2, base, f, c0, c1)
    assert np.isnan(lb).any() and np.isinf(lb).any()
    for tau in (0.2, 1.0, float(np.inf), -float(np.inf)):
        want = np.flatnonzero(C.fs_keep(lb, tau))
        for level in LEVELS:
            if kernels.use(level) != level:
                continue
            assert np.array_equal(kernels.fs_select(sums, soff, alpha, r2, base, f, c0, c1, tau), want), (level, tau)
    kernels.use("avx512")


@settings(max_examples=60, deadline=None)
@given(nbytes=st.sampled_from(FS_NBYTES), n=st.integers(1, 200), seed=st.integers(0, 2**32 - 1),
       qcut=st.integers(0, 40))
def test_fs_hamming_scan(kernels: Kernels, nbytes: int, n: int, seed: int, qcut: int) -> None:
    """With Hamming tables the sums are the exact Hamming distances of the query prefix, at every level."""
    rng = np.random.default_rng(seed)
    qbits = max(1, nbytes * 8 - qcut)
    codes = rng.integers(0, 256, (n, nbytes), dtype=np.uint8)
    query = rng.integers(0, 256, nbytes, dtype=np.uint8)
    mask = np.packbits((np.arange(nbytes * 8) < qbits).astype(np.uint8))
    expected = reference_hamming(codes & mask, query & mask)
    ref_tables = C.fs_tables_hamming(query, qbits, nbytes)
    assert np.array_equal(C.fs_sums(codes, ref_tables), expected)
    blocks = C.fs_blocks(codes)
    tau = int(np.sort(expected)[n // 2])
    for level in LEVELS:
        if kernels.use(level) != level:
            continue
        tables = kernels.fs_tables_hamming(query, qbits, nbytes)
        assert np.array_equal(tables, C.fs_table_bytes(ref_tables))
        got = kernels.fs_scan(blocks, blocks.size // (32 * nbytes), nbytes, tables)
        assert np.array_equal(got[:n], expected)
        assert np.array_equal(kernels.fs_select_u32(expected, tau), np.flatnonzero(expected <= tau))
    kernels.use("avx512")


def test_fs_blocks_layout() -> None:
    """Byte p of code j of a block sits at p * 32 + j; the C put/get use the same layout."""
    codes = np.arange(70 * 4, dtype=np.uint8).reshape(70, 4)
    b = C.fs_blocks(codes)
    assert b.size == 3 * 32 * 4
    assert b[1 * 32 * 4 + 2 * 32 + 5] == codes[32 + 5, 2]
    assert b[2 * 32 * 4 + 3 * 32 + 10] == 0  # padding


# --- the index's rotation (codes.rotate): C equals numpy bit for bit, and it is orthogonal ---

ROTATE_DIMS = [1, 2, 3, 7, 8, 63, 64, 65, 100, 127, 128, 129, 256, 384, 768, 1000, 1025]


@settings(max_examples=80, deadline=None)
@given(dims=st.sampled_from(ROTATE_DIMS) | st.integers(1, 2100), seed=st.integers(0, 2**64 - 1),
       rounds=st.integers(1, 3), scale=st.sampled_from([1e-30, 1e-3, 1.0, 1e19, 3e38]))
def test_rotation_equals_numpy(kernels: Kernels, dims: int, seed: int, rounds: int, scale: float) -> None:
    rng = np.random.default_rng(seed % 2**32)
    x = (rng.standard_normal(dims) * scale).astype(np.float32)
    x[~np.isfinite(x)] = np.float32(3e38)
    got = kernels.rotate(x, seed, rounds)
    want = C.rotate(x, seed, rounds)
    assert np.array_equal(got.view(np.uint32), want.view(np.uint32))
    if not np.isfinite(got).all():
        return  # a vector longer than float's range: its rotation overflows (the index marks it unknown)
    back = kernels.rotate(got, seed, rounds, inverse=True)
    assert np.array_equal(back.view(np.uint32), C.unrotate(got, seed, rounds).view(np.uint32))
    if scale <= 1.0:  # orthogonal: the norm and the vector come back (float rounding aside)
        assert np.isclose(np.linalg.norm(got.astype(np.float64)), np.linalg.norm(x.astype(np.float64)), rtol=1e-5)
        assert np.allclose(back, x, rtol=0, atol=1e-5 * scale * np.sqrt(dims))


def test_rotation_spreads_uneven_variance() -> None:
    """A front-loaded variance (sd ~ 1/sqrt(i+1), or all of it in the first 8 dims) comes out spread as
    evenly as a uniformly random (Haar) rotation spreads it: the rotated dims' variances vary no more
    (coefficient of variation) than 1.25x a Haar rotation's on the same rows. Raw, they vary 384x."""
    rng = np.random.default_rng(28)
    for dims in (256, 384):
        haar, _ = np.linalg.qr(rng.standard_normal((dims, dims)))
        sd = 1 / np.sqrt(np.arange(dims) + 1)
        front = np.where(np.arange(dims) < 8, 1.0, 0.0)
        for profile in (sd, front):
            x = (rng.standard_normal((3000, dims)) * profile).astype(np.float32)
            var = np.stack([C.rotate(v) for v in x]).var(axis=0)
            var_haar = (x @ haar).var(axis=0)
            cv, cv_haar = var.std() / var.mean(), var_haar.std() / var_haar.mean()
            assert var.min() > 0 and cv < 1.25 * cv_haar, (dims, cv, cv_haar)


def test_rotation_seed_and_dims_are_checked() -> None:
    signs = C.rotation_signs(130, seed=1, rounds=2)
    assert signs.shape == (4, 130)  # 130 is not a power of two: a head and a tail step per round
    assert C.rotation_signs(128, seed=1, rounds=2).shape == (2, 128)
    assert 0.4 < signs.mean() < 0.6
    assert not np.array_equal(C.rotate(np.ones(130, np.float32), seed=1), C.rotate(np.ones(130, np.float32), seed=2))
