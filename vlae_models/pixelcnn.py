"""The small-window PixelCNN as a decoder head, and as an unconditional model ("pixelcnn").

Chen et al. 2017 ("Variational Lossy Autoencoder", arXiv:1611.02731) build their decoder
from a PixelCNN whose receptive field is deliberately *small* (6 masked 3 x 3 layers on MNIST):
it can model local texture, so the global structure has to go through the latent code. This
module holds the two pieces that the VLAE and its ablation share:

* :class:`AutoregressiveDecoder`: a :class:`~vlae_models.layers.masked.LocalPixelCNN` joined to
  one of the likelihoods of :mod:`vlae_models.likelihoods`. It turns the network output into
  the likelihood's parameter tensor (B, P, H, W), scores images with one parallel
  (teacher-forced) pass, and samples them pixel by pixel with exactly the same numbers.
* :class:`PixelCNN`, registered as ``"pixelcnn"``: the same decoder with no latent code at all.
  This is the paper's "Unconditional PixelCNN" / "Unconditional Decoder" arm (Appendix D,
  Table 2). Its likelihood is exact, its rate is exactly zero, and ``has_latents`` is False.

Channel handling. Every channel of a pixel is predicted from *earlier pixels only*
(``channel_order="joint"``); the likelihood then models the channels of one pixel jointly
(PixelCNN++'s linear colour coupling for ``logistic-mixture``). For grey or binary images
this is the ordinary raster-order PixelCNN. The network gives C * ceil(P / C) outputs per
pixel, of which the first P are the likelihood's parameters.

Inputs are mapped from [0, 1] to [-1, 1] before the first masked layer (so zero padding reads
as mid-grey rather than as black).
"""

from __future__ import annotations

import math
from typing import ClassVar

import torch
from torch import Tensor, nn

from vlae_models.config import ModelConfig, config_dataclass
from vlae_models.core import LatentModel, ModelError, ModelOutput, register_model
from vlae_models.layers.masked import LocalPixelCNN
from vlae_models.layers.pixel_steps import sample_autoregressive
from vlae_models.layers.resblocks import check_image_shape
from vlae_models.likelihoods import Likelihood, likelihood_from_config

SAMPLE_MODES = ("mean", "sample", "mode")


class AutoregressiveDecoder(nn.Module):
    """p(x | cond) = prod_i p(x_i | x_<i in the window, cond), a PixelCNN plus a likelihood.

    Args:
        likelihood: a :class:`~vlae_models.likelihoods.Likelihood` for the image channels.
        in_channels: image channels C.
        cond_channels: channels of the conditioning map (0: unconditional).
        n_layers, filters, kernel_size, n_res_blocks: the :class:`LocalPixelCNN` sizes; the
            window reaches ``n_layers * (kernel_size // 2)`` rows up and columns left/right.
    """

    def __init__(
        self,
        likelihood: Likelihood,
        in_channels: int,
        cond_channels: int,
        n_layers: int,
        filters: int,
        kernel_size: int,
        n_res_blocks: int,
    ) -> None:
        super().__init__()
        self.likelihood = likelihood
        self.n_params = likelihood.param_channels
        self.net = LocalPixelCNN(
            in_channels=in_channels,
            cond_channels=cond_channels,
            n_layers=n_layers,
            filters=filters,
            kernel_size=kernel_size,
            n_out_params=math.ceil(self.n_params / in_channels),
            n_res_blocks=n_res_blocks,
            channel_order="joint",
            centre_inputs=True,
        )

    def params(self, x: Tensor, cond: Tensor | None) -> Tensor:
        """Teacher-forced likelihood parameters, shape (B, P, H, W), for images x in [0, 1]."""
        return self.net(x, cond).flatten(1, 2)[:, : self.n_params]

    def log_prob(self, x: Tensor, cond: Tensor | None) -> Tensor:
        """log p(x | cond) in nats, shape (B,): one parallel pass."""
        return self.likelihood.log_prob(self.params(x, cond), x)

    @torch.no_grad()
    def sample(
        self,
        cond: Tensor | None,
        shape: tuple[int, int, int, int],
        greedy: bool = False,
    ) -> tuple[Tensor, Tensor]:
        """Draw x (B, C, H, W) pixel by pixel and return it with log p(x | cond) (B,) in nats.

        The log-probability is summed over the sampling steps; it equals :meth:`log_prob` of
        the drawn images (up to float rounding), which the tests check. ``greedy=True`` takes
        the most likely value at every step instead of a draw: a deterministic decoding.
        """
        n_params, likelihood = self.n_params, self.likelihood

        def step(params: Tensor) -> tuple[Tensor, Tensor]:
            # params (B, C, ceil(P / C)) -> the likelihood's (B, P, 1, 1) for one pixel
            p = params.reshape(params.shape[0], -1)[:, :n_params, None, None]
            values = likelihood.mode(p) if greedy else likelihood.sample(p)  # (B, C, 1, 1)
            return values.flatten(1), likelihood.log_prob(p, values)

        return sample_autoregressive(self.net, cond, shape, step)

    @torch.no_grad()
    def output(self, x: Tensor, cond: Tensor | None, mode: str) -> Tensor:
        """What sample/reconstruct return for drawn pixels x: x itself, or the conditional means.

        ``mode="mean"`` gives E[x_i | x_<i, cond] along the drawn path (one parallel pass):
        smoother pictures than the raw draw, with the same global structure. ``"sample"`` and
        ``"mode"`` return the drawn (or greedily decoded) pixels themselves.
        """
        check_mode(mode)
        return x if mode != "mean" else self.likelihood.mean(self.params(x, cond))


def check_mode(mode: str) -> None:
    if mode not in SAMPLE_MODES:
        raise ModelError(f"mode must be one of {SAMPLE_MODES}, got {mode!r}")


@config_dataclass
class PixelCNNConfig(ModelConfig):
    """The VLAE decoder without a latent code (defaults: the paper's MNIST PixelCNN)."""

    pixelcnn_layers: int = 6
    pixelcnn_filters: int = 12
    pixelcnn_kernel: int = 3
    pixelcnn_res_blocks: int = 4  # 1 x 1 residual blocks after the masked layers

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return (self.in_channels, self.image_size, self.image_size)


@register_model(
    "pixelcnn",
    PixelCNNConfig,
    "Unconditional small-window PixelCNN (VLAE ablation): exact likelihood, no latent code",
)
class PixelCNN(LatentModel):
    """Chen et al. 2017, Appendix D, "Unconditional PixelCNN": the VLAE decoder on its own.

    ``forward`` returns distortion = -log p(x) (exact) and a rate that is exactly zero: there
    is no latent code, so nothing is transmitted beside the pixels. ``log_likelihood(x, k)``
    returns the exact log p(x) for every k. ``has_latents`` is False; its rate is reported as
    a KL that is exactly 0 (``rate_kind="kl"``). ``has_continuous_latents`` stays True only so that
    :func:`vlae_models.evaluate.evaluate` takes its one-row path (the other path is VQ-VAE's);
    ``posterior_moments`` returns no levels.
    """

    has_latents: ClassVar[bool] = False
    autoregressive: ClassVar[bool] = True  # sample/reconstruct cost H*W sequential passes

    def __init__(self, config: PixelCNNConfig) -> None:
        super().__init__()
        self.config = config
        self.likelihood = likelihood_from_config(config)
        self.decoder = AutoregressiveDecoder(
            self.likelihood,
            config.in_channels,
            0,
            config.pixelcnn_layers,
            config.pixelcnn_filters,
            config.pixelcnn_kernel,
            config.pixelcnn_res_blocks,
        )

    def _check(self, x: Tensor) -> None:
        check_image_shape(x, self.config.in_channels, self.config.image_size, "pixelcnn")

    def forward(self, x: Tensor) -> ModelOutput:
        self._check(x)
        log_px = self.decoder.log_prob(x, None)
        return ModelOutput(distortion=-log_px, rate=torch.zeros_like(log_px))

    def log_likelihood(self, x: Tensor, k: int, max_rows: int = 8192) -> Tensor:
        """The exact log p(x) in nats, shape (B,); k and max_rows are accepted and unused."""
        if k < 1:
            raise ModelError(f"iw_samples must be >= 1, got {k}")
        self._check(x)
        return self.decoder.log_prob(x, None)

    def log_importance_weights(self, x: Tensor, k: int) -> Tensor:
        """No latent code: every "weight" is the exact log p(x), shape (B, k)."""
        return self.log_likelihood(x, k).unsqueeze(1).expand(-1, k)

    def compile_targets(self) -> list[nn.Module]:
        return [self.decoder.net]  # the PixelCNN: nearly all of the IWAE's time

    def posterior_moments(self, x: Tensor) -> list[tuple[Tensor, Tensor]]:
        return []

    @torch.no_grad()
    def sample_with_log_prob(self, n: int) -> tuple[Tensor, Tensor]:
        """n images drawn pixel by pixel, with their log p(x) (n,) summed over the steps."""
        return self.decoder.sample(None, (n, *self.config.image_shape))

    @torch.no_grad()
    def sample(self, n: int, mode: str = "mean") -> Tensor:
        """n images: drawn pixels (``mode="sample"``) or their conditional means ("mean")."""
        check_mode(mode)
        x, _ = self.sample_with_log_prob(n)
        return self.decoder.output(x, None, mode)

    @torch.no_grad()
    def reconstruct(self, x: Tensor, mode: str = "mean") -> Tensor:
        """What a zero-rate code decodes to: fresh unconditional samples, unrelated to x.

        (A teacher-forced prediction would read the true pixels, which a receiver at rate zero
        does not have, and would make the reconstruction error look far too good.)
        """
        self._check(x)
        return self.sample(len(x), mode)
