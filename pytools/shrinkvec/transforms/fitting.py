"""Fitting transforms on a sample of vectors: centring, PCA rotation, Matryoshka-Adaptor.

Each function returns an unnamed Transform (name "", version 0): adapt.py names, versions and stores it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import numpy as np
import numpy.typing as npt

from shrinkvec.transforms.adaptor import DEFAULTS, AdaptorConfig, train
from shrinkvec.transforms.transform import Transform, TransformError


def _sample(x: npt.ArrayLike) -> np.ndarray:
    a = np.asarray(x, dtype=np.float32)
    if a.ndim != 2 or a.shape[0] == 0:
        raise TransformError("the sample must be a non-empty 2-D array of vectors")
    if not np.isfinite(a).all():
        raise TransformError("the sample has NaN or infinite values")
    return a


def fit_center(x: npt.ArrayLike, statistic: Literal["mean", "median"] = "mean") -> Transform:
    """Per-dimension mean (or median) subtracted before coding, so each sign bit is balanced."""
    a = _sample(x)
    if a.shape[0] < 2:
        raise TransformError(f"sample too small for center: {a.shape[0]} vectors, need at least 2")
    c = np.median(a, axis=0) if statistic == "median" else a.astype(np.float64).mean(axis=0)
    d = a.shape[1]
    return Transform(name="", kind="center", dims_in=d, dims_out=d, center=c.astype(np.float32),
                     fit={"method": "center", "statistic": statistic, "sample": int(a.shape[0])})


def pca_rotation(a: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(mean, rotation rows ordered by decreasing variance, variances) of a sample; deterministic signs."""
    x = a.astype(np.float64)
    mean = x.mean(axis=0)
    cov = np.cov(x - mean, rowvar=False, bias=True)
    var, vecs = np.linalg.eigh(cov)
    order = np.argsort(var)[::-1]
    var, rot = var[order], vecs[:, order].T
    # the sign of each component: its largest-magnitude coordinate positive
    signs = np.sign(rot[np.arange(rot.shape[0]), np.abs(rot).argmax(axis=1)])
    rot = rot * np.where(signs == 0, 1.0, signs)[:, None]
    return mean, rot, var


def fit_pca(x: npt.ArrayLike) -> Transform:
    """Centre, then rotate onto the principal axes ordered by variance (orthogonal, not whitened):
    prefixes keep the most variance, full-dimension L2 distances of centred vectors are unchanged."""
    a = _sample(x)
    n, d = a.shape
    if n < d + 1:
        raise TransformError(f"sample too small for pca: {n} vectors, need more than the {d} dimensions")
    mean, rot, var = pca_rotation(a)
    explained = np.cumsum(var) / var.sum()
    fit = {"method": "pca", "sample": int(n),
           "explained": {str(m): float(explained[m - 1]) for m in (16, 32, 64, 128, 256) if m <= d}}
    return Transform(name="", kind="pca", dims_in=d, dims_out=d, center=mean.astype(np.float32),
                     matrix=rot.astype(np.float32), fit=fit)


def fit_adaptor(x: npt.ArrayLike, cfg: AdaptorConfig = DEFAULTS,
                pairs: tuple[np.ndarray, np.ndarray] | None = None,
                progress: Callable[[int, int, float], None] | None = None) -> Transform:
    """PCA rotation plus a residual MLP trained with the Matryoshka-Adaptor losses (adaptor.py)."""
    a = _sample(x)
    pca = fit_pca(a)
    if cfg.trainer == "torch":
        from shrinkvec.transforms.adaptor_torch import train_torch

        result = train_torch(a, pca.apply_fast, cfg, pairs=pairs, progress=progress)
    else:
        result = train(a, pca.apply_fast, cfg, pairs=pairs, progress=progress)
    fit = {"method": "adaptor", "sample": int(a.shape[0]), "hidden": cfg.hidden, "trainer": cfg.trainer,
           "prefixes": list(cfg.prefixes),
           "steps": result.steps, "best_step": result.best_step, "seed": cfg.seed,
           "labelled_pairs": 0 if pairs is None else int(len(pairs[0])),
           "heldout_loss": [[s, round(v, 6)] for s, v in result.history]}
    return Transform(name="", kind="adaptor", dims_in=pca.dims_in, dims_out=pca.dims_out, center=pca.center,
                     matrix=pca.matrix, w1=result.w1, b1=result.b1, w2=result.w2, b2=result.b2, fit=fit)
