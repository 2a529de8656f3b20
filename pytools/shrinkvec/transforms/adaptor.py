"""The Matryoshka-Adaptor (Yoon et al. 2024): a residual MLP that makes the prefixes of existing
embeddings usable, trained in numpy (no torch needed; adaptor_torch.py is the optional torch trainer).

    z = R (e - mean)                 PCA rotation of the centred embedding (the starting point: the
                                     adaptor is initialised to PCA, whose prefixes are already the best
                                     linear ones, and learns a correction on top)
    adapted = z + W2 relu(W1 z + b1) + b2          (W2 = 0, b2 = 0 at the start)

Losses, averaged over a set of prefix sizes m (cos_m: cosine of the first m dims of the adapted
vectors; cos: cosine of the raw full embeddings, the target the rerank uses):

- pairwise similarity preservation: mean |cos_m(i, j) - cos(i, j)| over all pairs of a batch;
- top-k similarity preservation: the same over each anchor's k nearest neighbours (by cos, found in
  the whole sample), plus a listwise term, KL(softmax(cos / t) || softmax(cos_m / t)) over the batch,
  which rewards keeping the neighbours' order;
- reconstruction regulariser: mean ||adapted - z||^2, so the map stays near the rotation;
- with labels (query, relevant document) pairs: a ranking loss, softmax cross-entropy of each query's
  prefix similarities over the batch's documents (in-batch negatives).

Early stopping: every `eval_every` steps the loss on held-out anchors (and held-out labelled pairs)
is measured; training stops after `patience` evaluations without improvement and keeps the best
weights. Deterministic for a given seed.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from shrinkvec.errors import ShrinkvecError

FloatArray = npt.NDArray[np.float32]


class AdaptorError(ShrinkvecError, ValueError):
    """Training cannot run on the given data (the message names the problem)."""


@dataclass(frozen=True)
class AdaptorConfig:
    """Hyper-parameters of the adaptor and its training (defaults tuned on 384-d text embeddings)."""

    prefixes: tuple[int, ...] = (32, 64, 128, 256)
    hidden: int = 256
    steps: int = 1500
    anchors: int = 32  # anchors per batch (each brings its k neighbours)
    k: int = 10  # neighbours per anchor
    randoms: int = 192  # random rows per batch
    lr: float = 1e-3
    w_pair: float = 1.0
    w_topk: float = 1.0
    w_list: float = 1.0
    w_recon: float = 0.1
    w_rank: float = 0.2  # with labels; 1.0 fits the labels more and the full vector's neighbours less
    temperature: float = 0.05
    eval_every: int = 50
    patience: int = 6
    holdout: float = 0.1
    max_anchor_pool: int = 4096
    seed: int = 0
    trainer: str = "numpy"  # or "torch" (adaptor_torch.py, the optional extra shrinkvec[adapt-torch])


DEFAULTS = AdaptorConfig()  # the default hyper-parameters (frozen: one instance serves every call)


@dataclass
class AdaptorResult:
    """Trained weights (on the rotated space) and the training record."""

    w1: FloatArray
    b1: FloatArray
    w2: FloatArray
    b2: FloatArray
    steps: int
    best_step: int
    history: list[tuple[int, float]] = field(default_factory=list)  # (step, held-out loss)


# ---------------------------------------------------------------------------------------------
# The model: forward and backward of z + W2 relu(W1 z + b1) + b2
# ---------------------------------------------------------------------------------------------


@dataclass
class _Params:
    w1: np.ndarray
    b1: np.ndarray
    w2: np.ndarray
    b2: np.ndarray

    def arrays(self) -> list[np.ndarray]:
        return [self.w1, self.b1, self.w2, self.b2]


def _forward(p: _Params, z: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(adapted, h, pre) for a batch z (B, d)."""
    pre = z @ p.w1.T + p.b1
    h = np.maximum(pre, 0.0)
    return z + h @ p.w2.T + p.b2, h, pre


def _backward(p: _Params, z: np.ndarray, h: np.ndarray, pre: np.ndarray, da: np.ndarray) -> list[np.ndarray]:
    """Gradients (w1, b1, w2, b2) from dL/d(adapted)."""
    dw2 = da.T @ h
    db2 = da.sum(axis=0)
    dh = (da @ p.w2) * (pre > 0)
    return [dh.T @ z, dh.sum(axis=0), dw2, db2]


def _normalize(u: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    n = np.sqrt((u * u).sum(axis=1, keepdims=True)) + 1e-12
    return u / n, n


def _norm_backward(un: np.ndarray, n: np.ndarray, g: np.ndarray) -> np.ndarray:
    """dL/du from dL/d(u/|u|)."""
    return np.asarray((g - (g * un).sum(axis=1, keepdims=True) * un) / n)


def _softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(axis=1, keepdims=True))
    return np.asarray(e / e.sum(axis=1, keepdims=True))


# ---------------------------------------------------------------------------------------------
# Losses on one batch
# ---------------------------------------------------------------------------------------------


@dataclass
class _Batch:
    z: np.ndarray  # (B, d) rotated inputs
    target: np.ndarray  # (B, B) raw full cosine
    weights: np.ndarray  # (B, B) weight of |cos_m - cos| per pair: pairwise (i != j) plus top-k (anchor, neighbour)
    anchors: np.ndarray  # row indices of the anchors
    self_mask: np.ndarray  # (A, B): -inf on each anchor's own column, else 0
    t_list: np.ndarray  # (A, B) softmax(cos / t) of each anchor over the batch (its own column excluded)
    log_t_list: np.ndarray


def _unsup_loss(cfg: AdaptorConfig, a: np.ndarray, fz: np.ndarray, b: _Batch,
                need_grad: bool) -> tuple[float, np.ndarray | None]:
    """Pairwise + top-k + listwise + reconstruction loss of adapted rows a; and dL/da."""
    bsz = a.shape[0]
    mp = len(cfg.prefixes)
    loss = 0.0
    da = np.zeros_like(a) if need_grad else None
    anchors = b.anchors
    for m in cfg.prefixes:
        un, n = _normalize(a[:, :m])
        s = un @ un.T
        diff = s - b.target
        loss += float((b.weights * np.abs(diff)).sum()) / mp
        p_m = _softmax(s[anchors] / cfg.temperature + b.self_mask)
        kl = b.t_list * (b.log_t_list - np.log(np.maximum(p_m, 1e-30)))
        loss += cfg.w_list * float(kl.sum()) / len(anchors) / mp
        if need_grad:
            assert da is not None
            ds = b.weights * np.sign(diff)
            ds[anchors] += (p_m - b.t_list) * (cfg.w_list / cfg.temperature / len(anchors))
            ds /= mp
            g = (ds + ds.T) @ un
            da[:, :m] += _norm_backward(un, n, g)
    d = a.shape[1]
    loss += cfg.w_recon * float((fz * fz).sum()) / bsz / d
    if need_grad:
        assert da is not None
        da += cfg.w_recon * 2.0 * fz / bsz / d
    return loss, da


def _rank_loss(cfg: AdaptorConfig, aq: np.ndarray, ad: np.ndarray,
               need_grad: bool) -> tuple[float, np.ndarray | None, np.ndarray | None]:
    """In-batch softmax cross-entropy of query i against document i, averaged over the prefixes."""
    p = aq.shape[0]
    mp = len(cfg.prefixes)
    loss = 0.0
    dq = np.zeros_like(aq) if need_grad else None
    dd = np.zeros_like(ad) if need_grad else None
    for m in cfg.prefixes:
        qn, qnorm = _normalize(aq[:, :m])
        dn, dnorm = _normalize(ad[:, :m])
        logits = qn @ dn.T / cfg.temperature
        pr = _softmax(logits)
        loss += cfg.w_rank * float(-np.log(np.maximum(np.diag(pr), 1e-30)).mean()) / mp
        if need_grad:
            assert dq is not None and dd is not None
            ds = (pr - np.eye(p)) / p / cfg.temperature * cfg.w_rank / mp
            dq[:, :m] += _norm_backward(qn, qnorm, ds @ dn)
            dd[:, :m] += _norm_backward(dn, dnorm, ds.T @ qn)
    return loss, dq, dd


# ---------------------------------------------------------------------------------------------
# Training
# ---------------------------------------------------------------------------------------------


def nearest(x_norm: np.ndarray, rows: np.ndarray, k: int, chunk: int = 1024) -> np.ndarray:
    """Indices of the k nearest (by inner product, excluding itself) of each row in `rows`."""
    out = np.empty((len(rows), k), dtype=np.int64)
    for s in range(0, len(rows), chunk):
        r = rows[s:s + chunk]
        sims = x_norm[r] @ x_norm.T
        sims[np.arange(len(r)), r] = -np.inf
        idx = np.argpartition(-sims, k, axis=1)[:, :k]
        order = np.argsort(-np.take_along_axis(sims, idx, axis=1), axis=1)
        out[s:s + chunk] = np.take_along_axis(idx, order, axis=1)
    return out


def _make_batch(cfg: AdaptorConfig, x_norm: np.ndarray, z: np.ndarray, anchors: np.ndarray, nbrs: np.ndarray,
                randoms: np.ndarray) -> _Batch:
    rows = np.concatenate([anchors, nbrs.ravel(), randoms])
    xn = x_norm[rows]
    target = xn @ xn.T
    bsz = len(rows)
    na, k = nbrs.shape
    topk = np.zeros_like(target, dtype=bool)
    for i in range(na):
        topk[i, na + i * k: na + (i + 1) * k] = True
    off = ~np.eye(bsz, dtype=bool)
    weights = (cfg.w_pair / off.sum()) * off + (cfg.w_topk / max(int(topk.sum()), 1)) * topk
    self_mask = np.zeros((na, bsz), dtype=np.float32)
    self_mask[np.arange(na), np.arange(na)] = -np.inf
    t_list = _softmax(target[:na] / cfg.temperature + self_mask)
    with np.errstate(divide="ignore"):
        log_t = np.where(t_list > 0, np.log(np.maximum(t_list, 1e-30)), 0.0)
    return _Batch(z=z[rows], target=target, weights=weights.astype(np.float32), anchors=np.arange(na),
                  self_mask=self_mask, t_list=t_list.astype(np.float32), log_t_list=log_t.astype(np.float32))


@dataclass
class _Prepared:
    """What both trainers (numpy here, torch in adaptor_torch.py) start from: the sample, its split into
    training and held-out rows with their neighbours, the fixed held-out batches and the labelled pairs
    (rotated, split 90/10). `rng` has drawn all of that, in this order, so the trainers continue alike."""

    cfg: AdaptorConfig
    rng: np.random.Generator
    d: int
    x_norm: np.ndarray
    z: np.ndarray
    train_rows: np.ndarray
    pool: np.ndarray
    train_nbrs: np.ndarray
    val_batches: list[_Batch]
    train_pairs: tuple[np.ndarray, np.ndarray] | None
    val_pairs: tuple[np.ndarray, np.ndarray] | None


def _prepare(x: npt.ArrayLike, rotate: Callable[[np.ndarray], np.ndarray], cfg: AdaptorConfig,
             pairs: tuple[np.ndarray, np.ndarray] | None) -> _Prepared:
    """Check the sample and the pairs, and build what the training loop needs (see _Prepared)."""
    x = np.asarray(x, dtype=np.float32)
    n, d = x.shape
    prefixes = tuple(m for m in cfg.prefixes if m <= d)
    if not prefixes:
        raise AdaptorError(f"no prefix size of {cfg.prefixes} fits {d} dimensions")
    cfg_m = AdaptorConfig(**{**cfg.__dict__, "prefixes": prefixes})
    need = max(cfg.k + 1, 20) * 10
    if n < need:
        raise AdaptorError(f"the adaptor needs a sample of at least {need} vectors, got {n}")
    rng = np.random.default_rng(cfg.seed)
    x_norm, _ = _normalize(x.astype(np.float64))
    x_norm = x_norm.astype(np.float32)
    z = rotate(x).astype(np.float32)

    perm = rng.permutation(n)
    n_val = max(int(n * cfg.holdout), cfg.anchors)
    val_rows, train_rows = perm[:n_val], perm[n_val:]
    pool = train_rows[: cfg.max_anchor_pool]
    val_pool = val_rows[: min(len(val_rows), 512)]
    # neighbours of training anchors among training rows, of held-out anchors among all rows
    train_nbrs = train_rows[nearest(x_norm[train_rows], _positions(train_rows, pool), cfg.k)]
    val_nbrs = nearest(x_norm, val_pool, cfg.k)

    # held-out batches: fixed, built once
    val_batches = []
    for s in range(0, len(val_pool), cfg.anchors):
        a = val_pool[s:s + cfg.anchors]
        if len(a) < 2:
            continue
        r = val_rows[rng.integers(0, len(val_rows), cfg.randoms)]
        val_batches.append(_make_batch(cfg_m, x_norm, z, a, val_nbrs[s:s + cfg.anchors], r))
    val_pairs = train_pairs = None
    if pairs is not None:
        qv, dv = (np.asarray(a, dtype=np.float32) for a in pairs)
        if len(qv) != len(dv) or len(qv) < 20:
            raise AdaptorError(f"need at least 20 labelled pairs, got {len(qv)}")
        pp = rng.permutation(len(qv))
        nv = max(len(qv) // 10, 10)
        zq, zd = rotate(qv).astype(np.float32), rotate(dv).astype(np.float32)
        val_pairs = (zq[pp[:nv]], zd[pp[:nv]])
        train_pairs = (zq[pp[nv:]], zd[pp[nv:]])
    return _Prepared(cfg_m, rng, d, x_norm, z, train_rows, pool, train_nbrs, val_batches, train_pairs, val_pairs)


def train(x: npt.ArrayLike, rotate: Callable[[np.ndarray], np.ndarray], cfg: AdaptorConfig = DEFAULTS,
          pairs: tuple[np.ndarray, np.ndarray] | None = None,
          progress: Callable[[int, int, float], None] | None = None) -> AdaptorResult:
    """Train the residual MLP on a sample x (n, d) of raw embeddings.

    `rotate` maps raw vectors to the space the MLP works in (centre + PCA rotation). `pairs` are
    optional labelled (query vectors, relevant document vectors), row i relevant to row i.
    `progress(step, steps, heldout_loss)` is called at each evaluation.
    """
    prep = _prepare(x, rotate, cfg, pairs)
    rng, d = prep.rng, prep.d
    p = _Params(w1=(rng.standard_normal((cfg.hidden, d)) * math.sqrt(2.0 / d) * 0.1).astype(np.float32),
                b1=np.zeros(cfg.hidden, np.float32), w2=np.zeros((d, cfg.hidden), np.float32),
                b2=np.zeros(d, np.float32))
    adam = _Adam(p)
    stop = EarlyStop(_heldout(p, prep), [a.copy() for a in p.arrays()], cfg.patience)
    step = 0
    for step in range(1, cfg.steps + 1):
        adam.update(p, _gradients(p, cfg, prep), step, cfg.lr)
        if step % cfg.eval_every == 0:
            v = _heldout(p, prep)
            if progress is not None:
                progress(step, cfg.steps, v)
            if stop.observe(step, v, lambda: [a.copy() for a in p.arrays()]):
                break
    return stop.result(step)


class EarlyStop:
    """Held-out early stopping, shared by the trainers (numpy here, torch in adaptor_torch): the best
    parameters so far, the loss history, and when `patience` evaluations in a row have not improved."""

    def __init__(self, loss: float, arrays: list[np.ndarray], patience: int) -> None:
        self.best, self.best_arrays, self.best_step, self.bad = loss, arrays, 0, 0
        self.history = [(0, loss)]
        self.patience = patience

    def observe(self, step: int, loss: float, arrays: Callable[[], list[np.ndarray]]) -> bool:
        """Record the held-out loss at `step` (and the parameters, from `arrays()`, when it is the best);
        True when training stops."""
        self.history.append((step, loss))
        if loss < self.best - 1e-6:
            self.best, self.best_step, self.bad = loss, step, 0
            self.best_arrays = arrays()
            return False
        self.bad += 1
        return self.bad >= self.patience

    def result(self, steps: int) -> AdaptorResult:
        """The best parameters, as float32, after `steps` steps."""
        w1, b1, w2, b2 = (a.astype(np.float32) for a in self.best_arrays)
        return AdaptorResult(w1=w1, b1=b1, w2=w2, b2=b2, steps=steps, best_step=self.best_step, history=self.history)


def _heldout(p: _Params, prep: _Prepared) -> float:
    """The held-out loss: the unsupervised loss of the validation batches, plus the ranking loss of the
    held-out labelled pairs."""
    total = 0.0
    for vb in prep.val_batches:
        a, _, _ = _forward(p, vb.z)
        total += _unsup_loss(prep.cfg, a, a - vb.z, vb, False)[0]
    total /= max(len(prep.val_batches), 1)
    if prep.val_pairs is not None:
        aq = _forward(p, prep.val_pairs[0])[0]
        ad = _forward(p, prep.val_pairs[1])[0]
        total += _rank_loss(prep.cfg, aq, ad, False)[0]
    return total


def _gradients(p: _Params, cfg: AdaptorConfig, prep: _Prepared) -> list[np.ndarray]:
    """The gradients (w1, b1, w2, b2) of one training step: a random batch's unsupervised loss, plus the
    ranking loss of a random draw of the labelled pairs."""
    rng = prep.rng
    ai = rng.integers(0, len(prep.pool), cfg.anchors)
    batch = _make_batch(prep.cfg, prep.x_norm, prep.z, prep.pool[ai], prep.train_nbrs[ai],
                        prep.train_rows[rng.integers(0, len(prep.train_rows), cfg.randoms)])
    a, h, pre = _forward(p, batch.z)
    _, da = _unsup_loss(prep.cfg, a, a - batch.z, batch, True)
    assert da is not None
    grads = _backward(p, batch.z, h, pre, da)
    if prep.train_pairs is not None:
        pi = rng.integers(0, len(prep.train_pairs[0]), min(128, len(prep.train_pairs[0])))
        zq, zd = prep.train_pairs[0][pi], prep.train_pairs[1][pi]
        aq, hq, preq = _forward(p, zq)
        ad, hd, pred = _forward(p, zd)
        _, dq, dd = _rank_loss(prep.cfg, aq, ad, True)
        assert dq is not None and dd is not None
        for g, gq, gd in zip(grads, _backward(p, zq, hq, preq, dq), _backward(p, zd, hd, pred, dd), strict=True):
            g += gq + gd
    return grads


class _Adam:
    """Adam's moment estimates of the parameters, and its update step."""

    B1, B2, EPS = 0.9, 0.999, 1e-8

    def __init__(self, p: _Params) -> None:
        self.m1 = [np.zeros_like(a) for a in p.arrays()]
        self.m2 = [np.zeros_like(a) for a in p.arrays()]

    def update(self, p: _Params, grads: list[np.ndarray], step: int, lr: float) -> None:
        """Move every parameter array in place by one bias-corrected Adam step."""
        b1_, b2_, eps = self.B1, self.B2, self.EPS
        for i, (arr, g) in enumerate(zip(p.arrays(), grads, strict=True)):
            self.m1[i] = b1_ * self.m1[i] + (1 - b1_) * g
            self.m2[i] = b2_ * self.m2[i] + (1 - b2_) * g * g
            mh = self.m1[i] / (1 - b1_ ** step)
            vh = self.m2[i] / (1 - b2_ ** step)
            arr -= (lr * mh / (np.sqrt(vh) + eps)).astype(np.float32)


def _positions(universe: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Positions of `rows` within `universe` (every row is in it)."""
    order = np.argsort(universe)
    return order[np.searchsorted(universe[order], rows)]
