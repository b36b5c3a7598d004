"""A hierarchical VLAE: the HVAE's top-down latent levels, a small-window PixelCNN decoder,
and the autoregressive-flow prior on the top level.

Built from the parts the suite has (Chen et al. 2017's VLAE on Sønderby et al. 2016's
top-down hierarchy; the chapter's "z1 coarse, z2 fine, each level adds more detail"):

* inference and the latent levels are :class:`~vlae_models.hvae.HVAE`'s: a bottom-up pass,
  then levels visited in generation order, each a ``z_channels`` x H/4 x W/4 map with a
  Gaussian posterior q(z_l | x, z_<l) and, below the top, a Gaussian prior p(z_l | z_<l);
* the top level's prior is the VLAE's autoregressive flow over the flattened map (the VLAE
  ablation's larger win: 1.0 nats over a Gaussian prior on our runs, 0.5 in the paper);
* the decoder is the VLAE's: the final top-down state, upsampled to a ``cond_channels`` map,
  conditions a :class:`~vlae_models.layers.masked.LocalPixelCNN` whose window (6 masked 3 x 3
  layers) is deliberately small, so the global structure has to travel through the levels;
* free bits: the VLAE's floor, ``free_bits_per_pixel`` times C*H*W nats on the batch-mean
  total KL (``--set free_bits_mode=level`` floors each level instead).

Rate per level, nats: level 0 (top) is the one-sample estimate log q(z_0|x) - log p_AF(z_0)
(no closed form with the flow, as in the VLAE); lower levels the analytic KL given the sampled
levels above (as in the HVAE). ``extras["kl_levels"]`` (B, L) holds them.

Real bits (``compress``): level 0's posterior mean is mapped through the flow to its noise
coordinates and coded under N(0, I) (with ``prior="gaussian"``, under its learned Gaussian
prior, as the HVAE's); each lower level under its Gaussian prior given the
*decoded* levels above, both with per-channel steps (:mod:`vlae_models.entropy`); the decoder
then draws the pixels with a fixed seed, as the VLAE's does.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import torch
from torch import Tensor

from vlae_models.config import config_dataclass
from vlae_models.core import ModelError, ModelOutput, register_model
from vlae_models.distributions import gaussian_log_prob, kl_diag_gaussians, rsample
from vlae_models.entropy import channel_steps, gaussian_coder, unpack_steps
from vlae_models.hvae import HVAE, Gaussian, HVAEConfig
from vlae_models.layers.flows import AutoregressiveFlowPrior
from vlae_models.layers.resblocks import up_stem
from vlae_models.pixelcnn import AutoregressiveDecoder, check_mode


@config_dataclass
class HierarchicalVLAEConfig(HVAEConfig):
    """The HVAE's levels (``levels``, ``width``, ``z_channels``) and the VLAE's decoder and
    prior; sizes default to the VLAE paper's MNIST decoder and flow."""

    cond_channels: int = 4
    pixelcnn_layers: int = 6
    pixelcnn_filters: int = 12
    pixelcnn_kernel: int = 3
    pixelcnn_res_blocks: int = 4
    prior: str = "af"  # the top level's prior: "af" or "gaussian" (the HVAE's learned one)
    flow_steps: int = 4
    flow_hidden: int = 640
    flow_hidden_layers: int = 2
    free_bits_per_pixel: float = 0.01


@register_model(
    "hierarchical-vlae",
    HierarchicalVLAEConfig,
    "Hierarchical VLAE: HVAE top-down levels, small-window PixelCNN decoder, AF prior on top",
)
class HierarchicalVLAE(HVAE):
    """The HVAE's levels with the VLAE's decoder and prior (see the module docstring)."""

    autoregressive: ClassVar[bool] = True  # sample/reconstruct draw pixels one at a time

    def __init__(self, config: HierarchicalVLAEConfig) -> None:
        super().__init__(config)
        if config.prior not in ("af", "gaussian"):
            raise ModelError(f"prior must be 'af' or 'gaussian', got '{config.prior}'")
        if config.pixelcnn_kernel < 1 or config.pixelcnn_kernel % 2 == 0:
            raise ModelError(f"pixelcnn_kernel must be odd, got {config.pixelcnn_kernel}")
        side = config.image_size // 4
        self.top_shape = (config.z_channels, side, side)
        self.cond_net = up_stem(config.width, config.cond_channels)
        self.decoder = AutoregressiveDecoder(  # replaces the HVAE's factorised decoder
            self.likelihood, config.in_channels, config.cond_channels, config.pixelcnn_layers,
            config.pixelcnn_filters, config.pixelcnn_kernel, config.pixelcnn_res_blocks,
        )  # fmt: skip
        self.prior = None
        if config.prior == "af":
            self.prior = AutoregressiveFlowPrior(
                config.z_channels * side * side, config.flow_steps, hidden=config.flow_hidden,
                n_hidden_layers=config.flow_hidden_layers, mean_only=True,
            )  # fmt: skip

    @property
    def free_bits_nats(self) -> float:
        c = self.config
        return c.free_bits_per_pixel * c.in_channels * c.image_size**2

    # --- the top level's prior: the flow, in its noise coordinates eps ---------------------

    def top_log_prob(self, z: Tensor, prior: Gaussian) -> Tensor:
        """log p(z_0) in nats, (B,): the flow's (log-det 0, mean-only steps) or the HVAE's
        learned Gaussian ``prior``."""
        if self.prior is None:
            return gaussian_log_prob(z, *prior).flatten(1).sum(1)
        with torch.autocast(z.device.type, enabled=False):
            return self.prior.log_prob(z.flatten(1).float())

    def to_noise(self, z: Tensor) -> Tensor:
        """z_0 (B, c, h, w) -> eps (B, D), standard normal under the prior."""
        flat = z.flatten(1).float()
        return flat if self.prior is None else self.prior(flat)[0]

    def from_noise(self, eps: Tensor) -> Tensor:
        """eps (B, D) -> z_0 (B, c, h, w): the flow's sequential inverse."""
        z = eps if self.prior is None else self.prior.inverse(eps)
        return z.view(len(eps), *self.top_shape)

    def draw_top(self, n: int, prior: Gaussian) -> Tensor:
        if self.prior is None:
            return rsample(*prior)
        return self.prior.sample(n).view(n, *self.top_shape)

    # --- the protocol ----------------------------------------------------------------------

    def _level_kls(self, trace: list) -> Tensor:
        """(B, L): level 0's one-sample log q - log p, then the analytic KLs below."""
        z0, prior0, post0 = trace[0]
        top = gaussian_log_prob(z0, *post0).flatten(1).sum(1) - self.top_log_prob(z0, prior0)
        rest = [kl_diag_gaussians(*post, *prior).flatten(1).sum(1) for _, prior, post in trace[1:]]
        return torch.stack([top, *rest], dim=1)

    def forward(self, x: Tensor) -> ModelOutput:
        h, trace = self._trace(x, "sample")
        kl = self._level_kls(trace)
        distortion = -self.decoder.log_prob(x, self.cond_net(h))
        return ModelOutput(distortion=distortion, rate=kl.sum(1), extras={"kl_levels": kl})

    def log_importance_weights(self, x: Tensor, k: int) -> Tensor:
        b = x.shape[0]
        h, trace = self._trace(x, "sample", k=k)
        log_w = self.decoder.log_prob(x.repeat_interleave(k, dim=0), self.cond_net(h))
        for i, (z, prior, post) in enumerate(trace):
            log_p = self.top_log_prob(z, prior) if i == 0 else (
                gaussian_log_prob(z, *prior).flatten(1).sum(1)
            )  # fmt: skip
            log_w = log_w + log_p - gaussian_log_prob(z, *post).flatten(1).sum(1)
        return log_w.view(b, k)

    def compile_targets(self) -> list[torch.nn.Module]:
        return [self.decoder.net]

    @torch.no_grad()
    def draw_pixels(self, h: Tensor, mode: str = "mean") -> Tensor:
        """Pixels drawn from p(x | the top-down state h), returned as ``mode`` says."""
        check_mode(mode)
        cond = self.cond_net(h)
        c = self.config
        drawn, _ = self.decoder.sample(cond, (len(h), c.in_channels, c.image_size, c.image_size),
                                       greedy=mode == "mode")  # fmt: skip
        return self.decoder.output(drawn, cond, mode)

    @torch.no_grad()
    def reconstruct(self, x: Tensor, mode: str = "mean") -> Tensor:
        """Every level at its posterior mean, then the pixels drawn (as the VLAE's)."""
        h, _ = self._trace(x, "mean")
        return self.draw_pixels(h, mode)

    @torch.no_grad()
    def sample(self, n: int, mode: str = "mean") -> Tensor:
        def from_prior(i: int, prior: Gaussian, post: Gaussian | None) -> Tensor:
            return self.draw_top(n, prior) if i == 0 else rsample(*prior)

        return self.draw_pixels(self.top_down(n, from_prior), mode)

    @torch.no_grad()
    def redraw(self, x: Tensor, keep: Sequence[int], mode: str = "mean") -> Tensor:
        """Images that keep the levels ``keep`` of x (their posterior means, on x's own
        posterior-mean path) and draw every other level from its prior given the levels
        above, then the pixels: what each level holds ("what each level keeps")."""
        _, trace = self._trace(x, "mean")

        def mixed(i: int, prior: Gaussian, post: Gaussian | None) -> Tensor:
            if i in keep:
                return trace[i][0]
            return self.draw_top(len(x), prior) if i == 0 else rsample(*prior)

        return self.draw_pixels(self.top_down(len(x), mixed), mode)

    @torch.no_grad()
    def compress(self, x: Tensor) -> dict[str, Any]:
        """Level 0 in the flow's noise coordinates under N(0, I), the lower levels under
        their priors given the decoded levels above (see the module docstring)."""
        coder, steps, strings = gaussian_coder(), [], []

        def coded_z(i: int, prior: Gaussian, post: Gaussian | None) -> Tensor:
            assert post is not None
            step_bytes, step = channel_steps(post[1])
            steps.append(step_bytes)
            if i > 0 or self.prior is None:  # under its Gaussian prior, as the HVAE's levels
                string, z_hat = coder.compress(post[0], *prior, step.to(x.device))
                strings.append(string)
                return z_hat
            eps = self.to_noise(post[0]).view(post[0].shape)
            zeros = torch.zeros_like(eps)
            string, eps_hat = coder.compress(eps, zeros, zeros + 1.0, step.to(x.device))
            strings.append(string)
            return self.from_noise(eps_hat.flatten(1))

        self.top_down(x.shape[0], coded_z, self.encode(x))
        return {"strings": [b"".join(steps), *strings], "shape": [x.shape[0], len(strings)]}

    @torch.no_grad()
    def decompress(
        self, strings: list[bytes], shape: list[int], seed: int = 0, mode: str = "sample"
    ) -> dict[str, Tensor]:
        """The levels decoded, then the pixels drawn with a fixed ``seed`` (deterministic);
        ``mode="mean"`` gives the conditional means along that drawn path."""
        zc, n_levels = self.config.z_channels, self.config.levels
        step_len = (zc + 1) // 2
        if len(strings) != n_levels + 1 or shape[1:] != [n_levels] or (
            len(strings[0]) != n_levels * step_len
        ):  # fmt: skip
            raise ModelError(f"hierarchical-vlae stream does not fit: {len(strings)} strings, "
                             f"shape {shape}")  # fmt: skip
        device = self.h_top.device

        def decoded_z(i: int, prior: Gaussian, post: Gaussian | None) -> Tensor:
            chunk = strings[0][i * step_len : (i + 1) * step_len]
            step = unpack_steps(chunk, zc).view(-1, 1, 1).to(device)
            if i > 0 or self.prior is None:
                return gaussian_coder().decompress(strings[i + 1], *prior, step)
            zeros = torch.zeros_like(prior[0])
            eps_hat = gaussian_coder().decompress(strings[1], zeros, zeros + 1.0, step)
            return self.from_noise(eps_hat.flatten(1))

        h = self.top_down(shape[0], decoded_z)
        devices = [device.index or 0] if device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(seed)
            return {"x_hat": self.draw_pixels(h, mode)}
