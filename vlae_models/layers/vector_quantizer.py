"""Vector quantiser with an exponential-moving-average codebook and dead-code restarts.

van den Oord et al. 2017 ("Neural Discrete Representation Learning", appendix A.1) and
Razavi et al. 2019 (VQ-VAE-2) update the codebook by EMA instead of a codebook loss. With
decay gamma, Laplace smoothing eps, K codes and the encoder outputs z assigned to code k in
this batch (n_k of them, summing to s_k), one training step does

    N_k <- gamma * N_k + (1 - gamma) * n_k
    m_k <- gamma * m_k + (1 - gamma) * s_k
    Ñ_k  = (N_k + eps) / (sum_j N_j + K * eps) * sum_j N_j
    e_k <- m_k / Ñ_k

and the encoder is pulled towards its code by the commitment loss
``commitment_cost * ||z - sg(e)||^2`` (summed over dimensions and positions, per example).
Gradients reach the encoder through the straight-through estimator z + sg(e - z).

The codebook is initialised from the first training batch (K random encoder outputs), and
every code starts with a pseudo-count N_k = 1 (m_k = e_k). A code whose count falls below
``restart_threshold`` (an EMA of assignments per batch; 1.0 means "used less than about once
per batch") is restarted on a random encoder output of the current batch with N_k = 1, as in
Jukebox (Dhariwal et al. 2020). Set the threshold to 0 to disable restarts. All of this runs
in float32 with autocast off.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class VectorQuantizerEMA(nn.Module):
    def __init__(
        self,
        num_codes: int,
        dim: int,
        *,
        decay: float = 0.99,
        eps: float = 1e-5,
        commitment_cost: float = 0.25,
        restart_threshold: float = 1.0,
    ) -> None:
        super().__init__()
        self.num_codes, self.dim = num_codes, dim
        self.decay, self.eps = decay, eps
        self.commitment_cost = commitment_cost
        self.restart_threshold = restart_threshold
        embedding = torch.randn(num_codes, dim)
        self.register_buffer("embedding", embedding)
        self.register_buffer("ema_count", torch.ones(num_codes))
        self.register_buffer("ema_sum", embedding.clone())
        self.register_buffer("restarts", torch.zeros((), dtype=torch.long))
        self.register_buffer("initialized", torch.zeros((), dtype=torch.bool))

    def nearest(self, flat: Tensor) -> Tensor:
        """Index of the nearest code (squared Euclidean distance) for each row of (N, D)."""
        emb = self.embedding
        dist = (flat**2).sum(1, keepdim=True) - 2.0 * flat @ emb.t() + (emb**2).sum(1)
        return dist.argmin(1)

    def forward(self, z_e: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """z_e (B, D, H, W) -> (straight-through z_q, indices (B, H, W), commitment loss (B,))."""
        with torch.autocast(z_e.device.type, enabled=False):
            z_e = z_e.float()
            b, d, h, w = z_e.shape
            flat = z_e.permute(0, 2, 3, 1).reshape(-1, d)
            with torch.no_grad():
                update = self.training and bool(torch.isfinite(flat).all())
                if update and not bool(self.initialized):
                    self.init_from(flat)
                idx = self.nearest(flat)
                # The codes of this step are the ones before the EMA update (as in Sonnet).
                z_q = F.embedding(idx, self.embedding).view(b, h, w, d).permute(0, 3, 1, 2)
                if update:
                    self._ema_update(flat, idx)
            commit = self.commitment_cost * ((z_e - z_q) ** 2).flatten(1).sum(1)
            z_q = z_e + (z_q - z_e).detach()
        return z_q, idx.view(b, h, w), commit

    @torch.no_grad()
    def init_from(self, flat: Tensor) -> None:
        """Data-dependent initialisation: K random rows of ``flat`` become the codes."""
        pick = torch.randint(0, flat.shape[0], (self.num_codes,), device=flat.device)
        self.embedding.copy_(flat[pick])
        self.ema_sum.copy_(flat[pick])
        self.ema_count.fill_(1.0)
        self.initialized.fill_(True)

    @torch.no_grad()
    def _ema_update(self, flat: Tensor, idx: Tensor) -> None:
        onehot = F.one_hot(idx, self.num_codes).to(flat.dtype)  # (N, K)
        self.ema_count.mul_(self.decay).add_(onehot.sum(0), alpha=1.0 - self.decay)
        self.ema_sum.mul_(self.decay).add_(onehot.t() @ flat, alpha=1.0 - self.decay)
        total = self.ema_count.sum()
        smoothed = (self.ema_count + self.eps) / (total + self.num_codes * self.eps) * total
        self.embedding.copy_(self.ema_sum / smoothed.unsqueeze(1))
        if self.restart_threshold > 0:
            dead = self.ema_count < self.restart_threshold
            n_dead = int(dead.sum())
            if n_dead:
                pick = torch.randint(0, flat.shape[0], (n_dead,), device=flat.device)
                self.embedding[dead] = flat[pick]
                self.ema_sum[dead] = flat[pick]
                self.ema_count[dead] = 1.0
                self.restarts += n_dead

    def lookup(self, idx: Tensor) -> Tensor:
        """Indices (B, H, W) -> code vectors (B, D, H, W)."""
        return F.embedding(idx, self.embedding).permute(0, 3, 1, 2)
