"""β-VAE: convolutional encoder/decoder, diagonal Gaussian posterior, standard normal prior.

Kingma & Welling 2014 ("Auto-Encoding Variational Bayes") with the β-weighted objective of
Higgins et al. 2017 (β-VAE); β itself is a training setting (``TrainConfig.beta``), not part
of the model. ``rate`` is the analytic KL(q(z|x) || N(0, I)) and ``distortion`` is
-log p(x|z) for one reparameterised sample z ~ q(z|x).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from vlae_models.config import ModelConfig, config_dataclass
from vlae_models.core import LatentModel, ModelError, ModelOutput, register_model
from vlae_models.distributions import (
    gaussian_log_prob,
    kl_std_normal,
    rsample,
    split_gaussian,
    std_normal_log_prob,
)
from vlae_models.entropy import CalibratedSteps, compress_vectors, decompress_vectors
from vlae_models.layers.resblocks import check_image_shape, down_stem, up_stem
from vlae_models.likelihoods import likelihood_from_config


@config_dataclass
class BetaVAEConfig(ModelConfig):
    """Sizes are for 1x28x28 MNIST; ``image_size`` must be divisible by 4."""

    latent_dim: int = 32
    width: int = 32  # channels at the 7x7 bottleneck; the 14x14 stage uses width // 2
    gaussian_std: float = 0.1  # sigma, for likelihood="gaussian"


@register_model(
    "beta-vae", BetaVAEConfig, "β-VAE: conv encoder/decoder, Gaussian posterior, N(0, I)"
)
class BetaVAE(CalibratedSteps, LatentModel):
    """Kingma & Welling 2014 / Higgins et al. 2017."""

    def __init__(self, config: BetaVAEConfig) -> None:
        super().__init__()
        if config.image_size % 4:
            raise ModelError(f"image_size must be divisible by 4, got {config.image_size}")
        self.config = config
        self.likelihood = likelihood_from_config(config)
        side = config.image_size // 4
        self._grid = (config.width, side, side)
        flat = config.width * side * side
        self.encoder = nn.Sequential(
            down_stem(config.in_channels, config.width),
            nn.SiLU(),
            nn.Flatten(),
            nn.Linear(flat, 2 * config.latent_dim),
        )
        self.decoder_in = nn.Linear(config.latent_dim, flat)
        self.decoder = up_stem(config.width, self.likelihood.param_channels)
        self.init_steps(config.latent_dim)

    def encode(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """q(z|x): (mean, std), each (B, latent_dim)."""
        check_image_shape(x, self.config.in_channels, self.config.image_size, "beta-vae")
        return split_gaussian(self.encoder(x), dim=1)

    def decode(self, z: Tensor) -> Tensor:
        """z (B, latent_dim) -> likelihood parameters (B, P, H, W)."""
        h = self.decoder_in(z).view(z.shape[0], *self._grid)
        return self.decoder(h)

    def forward(self, x: Tensor) -> ModelOutput:
        mean, std = self.encode(x)
        z = rsample(mean, std)
        distortion = -self.likelihood.log_prob(self.decode(z), x)
        kl = kl_std_normal(mean, std)  # (B, D)
        return ModelOutput(distortion=distortion, rate=kl.sum(1), extras={"kl_per_dim": kl})

    @torch.no_grad()
    def reconstruct(self, x: Tensor) -> Tensor:
        mean, _ = self.encode(x)
        return self.likelihood.mean(self.decode(mean))

    @torch.no_grad()
    def sample(self, n: int, mode: str = "mean") -> Tensor:
        device = next(self.parameters()).device
        params = self.decode(torch.randn(n, self.config.latent_dim, device=device))
        return self.likelihood.mean(params) if mode == "mean" else self.likelihood.sample(params)

    def compile_targets(self) -> list[nn.Module]:
        return [self.decoder_in, self.decoder]

    def posterior_moments(self, x: Tensor) -> list[tuple[Tensor, Tensor]]:
        return [self.encode(x)]

    @torch.no_grad()
    def compress(self, x: Tensor) -> dict[str, Any]:
        """Real bits for a batch x: the posterior means, quantized and coded under the N(0, I)
        prior (:func:`vlae_models.entropy.compress_vectors`). CompressAI's convention."""
        mean, std = self.encode(x)
        strings = compress_vectors(mean, std, self.calibrated_steps)
        return {"strings": strings, "shape": list(mean.shape)}

    @torch.no_grad()
    def decompress(self, strings: list[bytes], shape: list[int]) -> dict[str, Tensor]:
        """The decoder's likelihood mean at the decoded latents (values in [0, 1])."""
        if shape[1:] != [self.config.latent_dim]:
            raise ModelError(f"beta-vae stream does not fit: latent {shape}")
        try:
            steps, device = self.calibrated_steps, self.latent_steps.device
            z = decompress_vectors(strings, shape, device, steps)
        except ValueError as err:
            raise ModelError(f"beta-vae stream does not fit: {err}") from None
        return {"x_hat": self.likelihood.mean(self.decode(z))}

    def iw_posterior(self, x: Tensor) -> tuple[Tensor, Tensor]:
        return self.encode(x)

    def log_importance_weights(
        self, x: Tensor, k: int, posterior: tuple[Tensor, Tensor] | None = None
    ) -> Tensor:
        """Encode once (or take ``posterior``), draw k samples per example, decode all B*k."""
        mean, std = posterior if posterior is not None else self.encode(x)
        b = x.shape[0]
        z = mean.unsqueeze(1) + std.unsqueeze(1) * torch.randn(b, k, mean.shape[1], device=x.device)
        log_q = gaussian_log_prob(z, mean.unsqueeze(1), std.unsqueeze(1)).sum(-1)  # (B, k)
        log_prior = std_normal_log_prob(z).sum(-1)
        params = self.decode(z.reshape(b * k, -1))
        x_rep = x.repeat_interleave(k, dim=0)
        log_px_z = self.likelihood.log_prob(params, x_rep).view(b, k)
        return log_px_z + log_prior - log_q
