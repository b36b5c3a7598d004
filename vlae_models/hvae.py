"""Hierarchical VAE with top-down inference (Sønderby 2016 LVAE; Kingma 2016 IAF-ResNet;
Child 2021 VDVAE).

A bottom-up pass computes one feature map per level from x. The top-down pass starts from a
learned constant h and visits the levels in generation order (level 0 first, the "top"):

    prior     p(z_l | z_<l)    = N(mu_p, sigma_p)  from h
    posterior q(z_l | x, z_<l) = N(mu_q, sigma_q)  from [h, bottom-up features of level l]
    h <- h + (residual from the prior head) + proj(z_l);  h <- ResBlock(h)

so prior and posterior share the top-down state, as in LVAE/VDVAE. Every level is a
``z_channels`` x (H/4) x (W/4) latent map. ``rate`` is the sum over levels of the analytic
KL(q || p) given the sampled z of the levels above, and ``extras["kl_levels"]`` (B, L) holds
each level's KL. Levels are numbered in generation order: level 0 is the top (sampled from
its learned prior first), level L-1 is the one closest to the data.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

from vlae_models.config import ModelConfig, config_dataclass
from vlae_models.core import LatentModel, ModelError, ModelOutput, register_model
from vlae_models.distributions import (
    gaussian_log_prob,
    kl_diag_gaussians,
    rsample,
    split_gaussian,
)
from vlae_models.entropy import channel_steps, gaussian_coder, unpack_steps
from vlae_models.layers.resblocks import Bottleneck, ResBlock, check_image_shape, down_stem, up_stem
from vlae_models.likelihoods import likelihood_from_config

Gaussian = tuple[Tensor, Tensor]  # (mean, std)
ChooseZ = Callable[[int, Gaussian, Gaussian | None], Tensor]


@config_dataclass
class HVAEConfig(ModelConfig):
    """Sizes are for 1x28x28 MNIST: every level is ``z_channels`` x 7 x 7."""

    levels: int = 2
    width: int = 32
    z_channels: int = 4
    gaussian_std: float = 0.1


class TopDownLevel(nn.Module):
    """One stochastic level: prior head, posterior head, z projection and a residual block."""

    def __init__(self, width: int, z_channels: int) -> None:
        super().__init__()
        mid = max(width // 4, 8)
        self.z_channels = z_channels
        self.prior = Bottleneck(width, mid, 2 * z_channels + width)
        self.posterior = Bottleneck(2 * width, mid, 2 * z_channels)
        self.z_proj = nn.Conv2d(z_channels, width, 1)
        self.block = ResBlock(width)
        # The prior head starts at N(0, 1) with no residual; VDVAE initialises it the same way.
        nn.init.zeros_(self.prior.net[-1].weight)
        nn.init.zeros_(self.prior.net[-1].bias)

    def heads(self, h: Tensor, bottom_up: Tensor | None):
        """Prior (mean, std), posterior (mean, std) or None, and the updated state h."""
        zc = self.z_channels
        p_out = self.prior(h)
        p_mean, p_std = split_gaussian(p_out[:, : 2 * zc])
        h = h + p_out[:, 2 * zc :]
        q = None
        if bottom_up is not None:
            q = split_gaussian(self.posterior(torch.cat([h, bottom_up], dim=1)))
        return (p_mean, p_std), q, h

    def advance(self, h: Tensor, z: Tensor) -> Tensor:
        return self.block(h + self.z_proj(z))


@register_model("hvae", HVAEConfig, "Hierarchical VAE: top-down inference, L levels (LVAE/VDVAE)")
class HVAE(LatentModel):
    def __init__(self, config: HVAEConfig) -> None:
        super().__init__()
        if config.levels < 1:
            raise ModelError(f"levels must be >= 1, got {config.levels}")
        if config.image_size % 4:
            raise ModelError(f"image_size must be divisible by 4, got {config.image_size}")
        self.config = config
        self.likelihood = likelihood_from_config(config)
        side = config.image_size // 4
        self.stem = down_stem(config.in_channels, config.width, n_res=0)
        self.bottom_up = nn.ModuleList(ResBlock(config.width) for _ in range(config.levels))
        self.h_top = nn.Parameter(torch.zeros(1, config.width, side, side))
        self.levels = nn.ModuleList(
            TopDownLevel(config.width, config.z_channels) for _ in range(config.levels)
        )
        self.decoder = up_stem(config.width, self.likelihood.param_channels)

    def encode(self, x: Tensor) -> list[Tensor]:
        """Bottom-up features, one per level in generation order (level 0 = deepest)."""
        check_image_shape(x, self.config.in_channels, self.config.image_size, "hvae")
        h = self.stem(x)
        feats = []
        for block in self.bottom_up:
            h = block(h)
            feats.append(h)
        return feats[::-1]

    def top_down(
        self, n: int, choose: ChooseZ, feats: list[Tensor] | None = None, k: int = 1
    ) -> Tensor:
        """The one top-down pass: level by level in generation order, the level's prior and
        (given bottom-up ``feats``) posterior, then z = ``choose(level index, prior,
        posterior)`` (each a (mean, std) pair; the posterior None without ``feats``), and
        the state advanced by z. Returns the final state, which the decoder reads.

        With ``k`` > 1 every image gets k independent samples (rows image-major, as
        ``repeat_interleave``); the level-0 heads depend on x alone, so they run once per
        image and are then repeated."""
        feats = feats if feats is not None else [None] * len(self.levels)
        h = self.h_top.expand(n, -1, -1, -1)
        for i, (level, bottom_up) in enumerate(zip(self.levels, feats, strict=True)):
            if i > 0 and k > 1 and bottom_up is not None:
                bottom_up = bottom_up.repeat_interleave(k, dim=0)
            prior, post, h = level.heads(h, bottom_up)
            if i == 0 and k > 1:
                prior, h = _repeat(prior, k), h.repeat_interleave(k, dim=0)
                post = _repeat(post, k) if post is not None else None
            h = level.advance(h, choose(i, prior, post))
        return h

    def _trace(self, x: Tensor, mode: str, k: int = 1) -> tuple[Tensor, list]:
        """The top-down pass on x with z ~ q (``mode="sample"``) or z = the mean of q;
        returns the final state and per level (z, prior, posterior)."""
        trace = []

        def posterior_z(i: int, prior: Gaussian, post: Gaussian | None) -> Tensor:
            assert post is not None
            z = rsample(*post) if mode == "sample" else post[0]
            trace.append((z, prior, post))
            return z

        return self.top_down(x.shape[0], posterior_z, self.encode(x), k), trace

    def forward(self, x: Tensor) -> ModelOutput:
        h, trace = self._trace(x, "sample")
        distortion = -self.likelihood.log_prob(self.decoder(h), x)
        kl = torch.stack(
            [kl_diag_gaussians(*post, *prior).flatten(1).sum(1) for _, prior, post in trace], dim=1
        )
        return ModelOutput(distortion=distortion, rate=kl.sum(1), extras={"kl_levels": kl})

    @torch.no_grad()
    def reconstruct(self, x: Tensor) -> Tensor:
        h, _ = self._trace(x, "mean")
        return self.likelihood.mean(self.decoder(h))

    @torch.no_grad()
    def sample(self, n: int, mode: str = "mean") -> Tensor:
        params = self.decoder(self.top_down(n, lambda i, prior, post: rsample(*prior)))
        return self.likelihood.mean(params) if mode == "mean" else self.likelihood.sample(params)

    @torch.no_grad()
    def compress(self, x: Tensor) -> dict[str, Any]:
        """Real bits, level by level in generation order: level l's posterior mean, given the
        *decoded* levels above, is quantized with per-channel steps (sqrt(12) times the mean
        posterior std, sent as 4-bit codes) and coded under that level's Gaussian prior, which
        the decoder computes from the same decoded levels (:mod:`vlae_models.entropy`)."""
        coder, steps, strings = gaussian_coder(), [], []

        def coded_z(i: int, prior: Gaussian, post: Gaussian | None) -> Tensor:
            assert post is not None
            step_bytes, step = channel_steps(post[1])
            string, z_hat = coder.compress(post[0], *prior, step.to(x.device))
            steps.append(step_bytes)
            strings.append(string)
            return z_hat

        self.top_down(x.shape[0], coded_z, self.encode(x))
        return {"strings": [b"".join(steps), *strings], "shape": [x.shape[0], len(strings)]}

    @torch.no_grad()
    def decompress(self, strings: list[bytes], shape: list[int]) -> dict[str, Tensor]:
        """The decoder's likelihood mean at the decoded latents (values in [0, 1])."""
        zc, n_levels = self.config.z_channels, self.config.levels
        step_len = (zc + 1) // 2
        if len(strings) != n_levels + 1 or shape[1:] != [n_levels] or (
            len(strings[0]) != n_levels * step_len
        ):  # fmt: skip
            raise ModelError(f"hvae stream does not fit: {len(strings)} strings, shape {shape}")
        device = self.h_top.device

        def decoded_z(i: int, prior: Gaussian, post: Gaussian | None) -> Tensor:
            chunk = strings[0][i * step_len : (i + 1) * step_len]
            step = unpack_steps(chunk, zc).view(-1, 1, 1).to(device)
            return gaussian_coder().decompress(strings[i + 1], *prior, step)

        h = self.top_down(shape[0], decoded_z)
        return {"x_hat": self.likelihood.mean(self.decoder(h))}

    def posterior_moments(self, x: Tensor) -> list[tuple[Tensor, Tensor]]:
        _, trace = self._trace(x, "mean")
        return [(post[0].flatten(1), post[1].flatten(1)) for _, _, post in trace]

    def compile_targets(self) -> list[nn.Module]:
        return [self.decoder]

    def log_importance_weights(self, x: Tensor, k: int) -> Tensor:
        """Bottom-up once per image, then k top-down samples per image in one batch."""
        b = x.shape[0]
        h, trace = self._trace(x, "sample", k=k)
        log_w = self.likelihood.log_prob(self.decoder(h), x.repeat_interleave(k, dim=0))
        for z, prior, post in trace:
            log_w = log_w + (gaussian_log_prob(z, *prior) - gaussian_log_prob(z, *post)).flatten(
                1
            ).sum(1)
        return log_w.view(b, k)


def _repeat(pair: tuple[Tensor, Tensor], k: int) -> tuple[Tensor, Tensor]:
    return pair[0].repeat_interleave(k, dim=0), pair[1].repeat_interleave(k, dim=0)
