"""VQ-VAE: a grid of discrete codes with an EMA codebook (van den Oord 2017; Razavi 2019).

The rate is a code length for the grid of code indices, reported two ways (``rate_kind``):

``fixed``
    log K nats per code position: what a fixed-length code costs.
``prior``
    -log pi(indices) under a learned factorised categorical prior pi over the K codes. The
    prior's logits are trained jointly, on stop-gradient indices (the indices are discrete, so
    no gradient reaches the encoder): its loss term only moves the prior.

``ModelOutput.rate`` holds the kind named by the config's ``rate_kind``; both are in
``extras`` (``rate_fixed``, ``rate_prior``), and the evaluation reports both. The rate has no
gradient with respect to the encoder, so β does not change VQ-VAE training: the trade-off is
set by the grid size and K. The training loss is distortion + ``extras["aux_loss"]``
(commitment loss + prior NLL).
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor, nn

from vlae_models.config import ModelConfig, config_dataclass
from vlae_models.core import LatentModel, ModelError, ModelOutput, register_model
from vlae_models.entropy import CategoricalCoder
from vlae_models.layers.resblocks import check_image_shape, down_stem, up_stem
from vlae_models.layers.vector_quantizer import VectorQuantizerEMA
from vlae_models.likelihoods import likelihood_from_config


@config_dataclass
class VQVAEConfig(ModelConfig):
    """Sizes are for 1x28x28 MNIST: a 7x7 grid of codes (``image_size`` divisible by 4)."""

    width: int = 32
    embedding_dim: int = 16
    num_codes: int = 128
    commitment_cost: float = 0.25
    ema_decay: float = 0.99
    ema_eps: float = 1e-5
    restart_threshold: float = 1.0  # restart codes whose EMA count falls below this; 0 = never
    rate_kind: str = "prior"  # which rate ModelOutput.rate holds: "prior" or "fixed"
    gaussian_std: float = 0.1


@register_model("vq-vae", VQVAEConfig, "VQ-VAE: EMA codebook, dead-code restarts, factorised prior")
class VQVAE(LatentModel):
    """van den Oord et al. 2017 with the EMA codebook of its appendix and Razavi et al. 2019."""

    has_continuous_latents = False

    def __init__(self, config: VQVAEConfig) -> None:
        super().__init__()
        if config.rate_kind not in ("prior", "fixed"):
            raise ModelError(f"rate_kind must be 'prior' or 'fixed', got '{config.rate_kind}'")
        if config.image_size % 4:
            raise ModelError(f"image_size must be divisible by 4, got {config.image_size}")
        self.config = config
        self.rate_kind = config.rate_kind  # type: ignore[misc]  # per instance, from the config
        self.likelihood = likelihood_from_config(config)
        side = config.image_size // 4
        self.grid = (side, side)
        self.encoder = nn.Sequential(
            down_stem(config.in_channels, config.width),
            nn.SiLU(),
            nn.Conv2d(config.width, config.embedding_dim, 1),
        )
        self.quantizer = VectorQuantizerEMA(
            config.num_codes,
            config.embedding_dim,
            decay=config.ema_decay,
            eps=config.ema_eps,
            commitment_cost=config.commitment_cost,
            restart_threshold=config.restart_threshold,
        )
        self.decoder = nn.Sequential(
            nn.Conv2d(config.embedding_dim, config.width, 1),
            up_stem(config.width, self.likelihood.param_channels),
        )
        self.prior_logits = nn.Parameter(torch.zeros(config.num_codes))

    @property
    def positions(self) -> int:
        return self.grid[0] * self.grid[1]

    def code_indices(self, x: Tensor) -> Tensor:
        """Nearest-code indices (B, h, w) for inputs x, without touching the codebook."""
        check_image_shape(x, self.config.in_channels, self.config.image_size, "vq-vae")
        z_e = self.encoder(x).float()
        flat = z_e.permute(0, 2, 3, 1).reshape(-1, z_e.shape[1])
        return self.quantizer.nearest(flat).view(x.shape[0], *self.grid)

    def prior_code_length(self, idx: Tensor) -> Tensor:
        """-log pi(indices) in nats per example, under the factorised prior."""
        log_pi = torch.log_softmax(self.prior_logits.float(), dim=0)
        return -log_pi[idx].flatten(1).sum(1)

    def forward(self, x: Tensor) -> ModelOutput:
        check_image_shape(x, self.config.in_channels, self.config.image_size, "vq-vae")
        z_q, idx, commit = self.quantizer(self.encoder(x))
        distortion = -self.likelihood.log_prob(self.decoder(z_q), x)
        prior_nll = self.prior_code_length(idx)  # gradient reaches only the prior logits
        fixed = torch.full_like(distortion, self.positions * math.log(self.config.num_codes))
        rate = prior_nll.detach() if self.rate_kind == "prior" else fixed
        extras = {
            "indices": idx,
            "rate_fixed": fixed,
            "rate_prior": prior_nll.detach(),
            "commitment": commit.detach(),
            "aux_loss": commit + prior_nll,
        }
        return ModelOutput(distortion=distortion, rate=rate, extras=extras)

    @torch.no_grad()
    def compress(self, x: Tensor) -> dict[str, Any]:
        """Real bits: the nearest-code indices, rANS-coded under the learned factorised prior
        (its 16-bit quantized CDF, :class:`~vlae_models.entropy.CategoricalCoder`)."""
        idx = self.code_indices(x)
        return {"strings": [self._coder().compress(idx)], "shape": [x.shape[0], self.positions]}

    @torch.no_grad()
    def decompress(self, strings: list[bytes], shape: list[int]) -> dict[str, Tensor]:
        """The decoder's likelihood mean at the decoded codes (values in [0, 1])."""
        if len(strings) != 1 or shape[1:] != [self.positions]:
            raise ModelError(f"vq-vae stream does not fit: {len(strings)} strings, shape {shape}")
        try:
            idx = self._coder().decompress(strings[0], shape[0] * self.positions)
        except ValueError as err:
            raise ModelError(f"vq-vae stream is corrupt: {err}") from None
        idx = idx.view(shape[0], *self.grid).to(self.prior_logits.device)
        return {"x_hat": self.likelihood.mean(self.decoder(self.quantizer.lookup(idx)))}

    def _coder(self) -> CategoricalCoder:
        return CategoricalCoder(torch.softmax(self.prior_logits.float(), dim=0))

    @torch.no_grad()
    def reconstruct(self, x: Tensor) -> Tensor:
        z_q = self.quantizer.lookup(self.code_indices(x))
        return self.likelihood.mean(self.decoder(z_q))

    @torch.no_grad()
    def sample(self, n: int, mode: str = "mean") -> Tensor:
        """Indices drawn independently from the factorised prior, then decoded."""
        probs = torch.softmax(self.prior_logits.float(), dim=0)
        idx = torch.multinomial(probs, n * self.positions, replacement=True).view(n, *self.grid)
        params = self.decoder(self.quantizer.lookup(idx))
        return self.likelihood.mean(params) if mode == "mean" else self.likelihood.sample(params)
