"""The Matryoshka-Adaptor trainer in PyTorch (optional: pip install 'shrinkvec[adapt-torch]').

Same model, losses, batches, held-out early stopping and result as the numpy trainer in adaptor.py
(gradients by autograd instead of by hand); CPU, float32. Used by `shrinkvec adapt --trainer torch`.
The stored transform is the same kind of record, applied by the same C function.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from shrinkvec.transforms.adaptor import (
    DEFAULTS,
    AdaptorConfig,
    AdaptorError,
    AdaptorResult,
    EarlyStop,
    _make_batch,
    _prepare,
    _Prepared,
)


def train_torch(x: np.ndarray, rotate: Callable[[np.ndarray], np.ndarray], cfg: AdaptorConfig = DEFAULTS,
                pairs: tuple[np.ndarray, np.ndarray] | None = None,
                progress: Callable[[int, int, float], None] | None = None) -> AdaptorResult:
    """adaptor.train with torch autograd and Adam (see adaptor.py for the losses)."""
    try:
        import torch
    except ImportError:
        raise AdaptorError("--trainer torch needs PyTorch: pip install 'shrinkvec[adapt-torch]'") from None
    torch.manual_seed(cfg.seed)
    model = _Model(torch, cfg, _prepare(x, rotate, cfg, pairs))
    opt = torch.optim.Adam(model.params, lr=cfg.lr)
    stop = EarlyStop(model.heldout(), model.arrays(), cfg.patience)
    step = 0
    for step in range(1, cfg.steps + 1):
        loss = model.step_loss()
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % cfg.eval_every == 0:
            v = model.heldout()
            if progress is not None:
                progress(step, cfg.steps, v)
            if stop.observe(step, v, model.arrays):
                break
    return stop.result(step)


class _Model:
    """The residual MLP as torch tensors, and its losses on the prepared sample (tensors are Any: torch is
    optional and untyped here)."""

    def __init__(self, torch: Any, cfg: AdaptorConfig, prep: _Prepared) -> None:
        self.torch, self.cfg, self.prep = torch, cfg, prep
        self.tp = self.vp = None
        if prep.train_pairs is not None and prep.val_pairs is not None:
            self.tp = (torch.from_numpy(prep.train_pairs[0]), torch.from_numpy(prep.train_pairs[1]))
            self.vp = (torch.from_numpy(prep.val_pairs[0]), torch.from_numpy(prep.val_pairs[1]))
        d = prep.d
        self.w1 = torch.tensor(prep.rng.standard_normal((cfg.hidden, d)) * np.sqrt(2.0 / d) * 0.1, dtype=torch.float32,
                               requires_grad=True)
        self.b1 = torch.zeros(cfg.hidden, requires_grad=True)
        self.w2 = torch.zeros((d, cfg.hidden), requires_grad=True)
        self.b2 = torch.zeros(d, requires_grad=True)
        self.params = [self.w1, self.b1, self.w2, self.b2]

    def arrays(self) -> list[np.ndarray]:
        """A numpy copy of the parameters."""
        return [p.detach().numpy().copy() for p in self.params]

    def forward(self, zb: Any) -> Any:
        return zb + self.torch.relu(zb @ self.w1.T + self.b1) @ self.w2.T + self.b2

    def unsup(self, b: Any) -> Any:
        """The unsupervised loss of a batch (adaptor._unsup_loss)."""
        torch, cfg, prefixes = self.torch, self.cfg, self.prep.cfg.prefixes
        mp = len(prefixes)
        zb = torch.from_numpy(b.z)
        a = self.forward(zb)
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
        return loss + cfg.w_recon * ((a - zb) ** 2).sum() / a.shape[0] / self.prep.d

    def rank(self, zq: Any, zd: Any) -> Any:
        """The ranking loss of labelled pairs (adaptor._rank_loss)."""
        torch, cfg, prefixes = self.torch, self.cfg, self.prep.cfg.prefixes
        mp = len(prefixes)
        aq, ad = self.forward(zq), self.forward(zd)
        loss = torch.zeros(())
        labels = torch.arange(len(zq))
        for m in prefixes:
            qn = torch.nn.functional.normalize(aq[:, :m], dim=1)
            dn = torch.nn.functional.normalize(ad[:, :m], dim=1)
            loss = loss + cfg.w_rank * torch.nn.functional.cross_entropy(qn @ dn.T / cfg.temperature, labels) / mp
        return loss

    def heldout(self) -> float:
        """The held-out loss (adaptor._heldout)."""
        val_batches = self.prep.val_batches
        with self.torch.no_grad():
            v = sum(float(self.unsup(b)) for b in val_batches) / max(len(val_batches), 1)
            if self.vp is not None:
                v += float(self.rank(*self.vp))
        return v

    def step_loss(self) -> Any:
        """The loss of one training step: a random batch, plus a random draw of the labelled pairs."""
        prep, cfg, rng = self.prep, self.cfg, self.prep.rng
        ai = rng.integers(0, len(prep.pool), cfg.anchors)
        batch = _make_batch(prep.cfg, prep.x_norm, prep.z, prep.pool[ai], prep.train_nbrs[ai],
                            prep.train_rows[rng.integers(0, len(prep.train_rows), cfg.randoms)])
        loss = self.unsup(batch)
        if self.tp is not None:
            pi = self.torch.from_numpy(rng.integers(0, len(self.tp[0]), min(128, len(self.tp[0]))))
            loss = loss + self.rank(self.tp[0][pi], self.tp[1][pi])
        return loss
