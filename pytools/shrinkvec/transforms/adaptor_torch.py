"""The Matryoshka-Adaptor trainer in PyTorch (optional: pip install 'shrinkvec[adapt-torch]').

Same model, losses, batches, held-out early stopping and result as the numpy trainer in adaptor.py
(gradients by autograd instead of by hand); CPU, float32. Used by `shrinkvec adapt --trainer torch`.
The stored transform is the same kind of record, applied by the same C function.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from shrinkvec.transforms.adaptor import DEFAULTS, AdaptorConfig, AdaptorError, AdaptorResult, _make_batch, _prepare


def train_torch(x: np.ndarray, rotate: Callable[[np.ndarray], np.ndarray], cfg: AdaptorConfig = DEFAULTS,
                pairs: tuple[np.ndarray, np.ndarray] | None = None,
                progress: Callable[[int, int, float], None] | None = None) -> AdaptorResult:
    """adaptor.train with torch autograd and Adam (see adaptor.py for the losses)."""
    try:
        import torch
    except ImportError:
        raise AdaptorError("--trainer torch needs PyTorch: pip install 'shrinkvec[adapt-torch]'") from None
    torch.manual_seed(cfg.seed)
    prep = _prepare(x, rotate, cfg, pairs)
    cfg_m, rng, d, x_norm, z = prep.cfg, prep.rng, prep.d, prep.x_norm, prep.z
    train_rows, pool, train_nbrs, val_batches = prep.train_rows, prep.pool, prep.train_nbrs, prep.val_batches
    prefixes = cfg_m.prefixes
    tp = vp = None
    if prep.train_pairs is not None and prep.val_pairs is not None:
        tp = (torch.from_numpy(prep.train_pairs[0]), torch.from_numpy(prep.train_pairs[1]))
        vp = (torch.from_numpy(prep.val_pairs[0]), torch.from_numpy(prep.val_pairs[1]))

    w1 = torch.tensor(rng.standard_normal((cfg.hidden, d)) * np.sqrt(2.0 / d) * 0.1, dtype=torch.float32,
                      requires_grad=True)
    b1 = torch.zeros(cfg.hidden, requires_grad=True)
    w2 = torch.zeros((d, cfg.hidden), requires_grad=True)
    b2 = torch.zeros(d, requires_grad=True)
    params = [w1, b1, w2, b2]
    opt = torch.optim.Adam(params, lr=cfg.lr)
    mp = len(prefixes)

    def forward(zb: torch.Tensor) -> torch.Tensor:
        return zb + torch.relu(zb @ w1.T + b1) @ w2.T + b2

    def unsup(b) -> torch.Tensor:  # type: ignore[no-untyped-def]  # a torch closure
        zb = torch.from_numpy(b.z)
        a = forward(zb)
        target, weights = torch.from_numpy(b.target), torch.from_numpy(b.weights)
        t_list, log_t = torch.from_numpy(b.t_list), torch.from_numpy(b.log_t_list)
        self_mask = torch.from_numpy(b.self_mask)
        na = len(b.anchors)
        loss = torch.zeros(())
        for m in prefixes:
            un = torch.nn.functional.normalize(a[:, :m], dim=1, eps=1e-12)
            s = un @ un.T
            loss = loss + (weights * (s - target).abs()).sum() / mp
            logp = torch.log_softmax(s[:na] / cfg.temperature + self_mask, dim=1)
            kl = torch.where(t_list > 0, t_list * (log_t - logp), torch.zeros_like(t_list))
            loss = loss + cfg.w_list * kl.sum() / na / mp
        return loss + cfg.w_recon * ((a - zb) ** 2).sum() / a.shape[0] / d

    def rank(zq: torch.Tensor, zd: torch.Tensor) -> torch.Tensor:
        aq, ad = forward(zq), forward(zd)
        loss = torch.zeros(())
        labels = torch.arange(len(zq))
        for m in prefixes:
            qn = torch.nn.functional.normalize(aq[:, :m], dim=1)
            dn = torch.nn.functional.normalize(ad[:, :m], dim=1)
            loss = loss + cfg.w_rank * torch.nn.functional.cross_entropy(qn @ dn.T / cfg.temperature, labels) / mp
        return loss

    def heldout() -> float:
        with torch.no_grad():
            v = sum(float(unsup(b)) for b in val_batches) / max(len(val_batches), 1)
            if vp is not None:
                v += float(rank(*vp))
        return v

    best = heldout()
    best_arrays = [p.detach().numpy().copy() for p in params]
    best_step, bad, step = 0, 0, 0
    history = [(0, best)]
    for step in range(1, cfg.steps + 1):
        ai = rng.integers(0, len(pool), cfg.anchors)
        batch = _make_batch(cfg_m, x_norm, z, pool[ai], train_nbrs[ai],
                            train_rows[rng.integers(0, len(train_rows), cfg.randoms)])
        loss = unsup(batch)
        if tp is not None:
            pi = torch.from_numpy(rng.integers(0, len(tp[0]), min(128, len(tp[0]))))
            loss = loss + rank(tp[0][pi], tp[1][pi])
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % cfg.eval_every == 0:
            v = heldout()
            history.append((step, v))
            if progress is not None:
                progress(step, cfg.steps, v)
            if v < best - 1e-6:
                best, best_step, bad = v, step, 0
                best_arrays = [p.detach().numpy().copy() for p in params]
            else:
                bad += 1
                if bad >= cfg.patience:
                    break
    a1, c1, a2, c2 = (a.astype(np.float32) for a in best_arrays)
    return AdaptorResult(w1=a1, b1=c1, w2=a2, b2=c2, steps=step, best_step=best_step, history=history)
