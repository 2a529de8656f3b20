"""The standalone kernels (the extension's own C, built with gcc) against numpy, at every SIMD level."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shrinkvec.kernels_build import Kernels

NBYTES = [1, 7, 8, 9, 16, 48, 63, 64, 65, 127, 128, 129, 192, 256, 257, 2000]


@pytest.fixture(scope="module")
def kernels(tmp_path_factory: pytest.TempPathFactory) -> Kernels:
    return Kernels.load(Path(tmp_path_factory.mktemp("kernels")))


def reference_hamming(codes: np.ndarray, query: np.ndarray) -> np.ndarray:
    return np.unpackbits(codes ^ query, axis=1).sum(axis=1).astype(np.uint32)


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
