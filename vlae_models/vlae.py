"""The Variational Lossy Autoencoder (VLAE; Chen et al. 2017, arXiv:1611.02731).

Why it exists
-------------
Under bits-back coding a VAE's code length is the negative ELBO,

    -ELBO(x) = -log p(x) + KL(q(z|x) || p(z|x)),

so every use of z costs the posterior mismatch. If the decoder can model the data without z,
the optimum ignores z (posterior collapse). A PixelCNN decoder whose receptive field is
deliberately *small* can model only local statistics, so the global structure has to travel
through z: the code becomes *lossy* on purpose (local detail is left to the decoder).

The model (``"vlae"``)
----------------------
* Encoder q(z|x): a small ResNet (two stride-2 convolutions and residual blocks, see
  :mod:`vlae_models.layers.resblocks`) to a diagonal Gaussian over a ``z_dim``-dimensional
  code. The paper uses 64 dimensions for binary images (Appendix A).
* Decoder p(x|z): a conditioning ResNet maps z to a ``cond_channels`` x H x W feature map
  (MNIST: 4 x 28 x 28), which conditions every layer of a
  :class:`~vlae_models.layers.masked.LocalPixelCNN` with ``pixelcnn_layers`` masked
  ``pixelcnn_kernel`` x ``pixelcnn_kernel`` layers of ``pixelcnn_filters`` filters plus
  ``pixelcnn_res_blocks`` 1 x 1 residual blocks (paper: 6 layers, 12 filters, 3 x 3, 4 blocks).
  The window is ``reach = layers * (kernel // 2)`` rows above (full width ``2 reach + 1``) and
  ``reach`` pixels to the left; the tests *measure* it.
* Prior p(z): ``prior="af"`` is the autoregressive-flow prior
  (:class:`~vlae_models.layers.flows.AutoregressiveFlowPrior`; paper: 4 mean-only steps, each
  a MADE with two hidden layers of 640 units); ``prior="gaussian"`` is N(0, I).

Rate (nats per example)
-----------------------
The AF prior has no closed-form KL, so for *both* priors the rate is the single-sample
Monte-Carlo estimate at the z that the distortion also uses,

    rate = log q(z|x) - log p(z),   z ~ q(z|x) (one reparameterised draw per example),

with log p(z) from ``AutoregressiveFlowPrior.log_prob``, which *includes* the flow's
log-determinant (the mean-only flow's is exactly 0; an affine flow's is not, and dropping it
would make the rate wrong). Its expectation is KL(q(z|x) || p(z)), and rate + distortion is
an unbiased estimate of the negative ELBO, the bits-back code length. The Gaussian arm uses
the same estimator so that the two priors are measured the same way.

Free bits (training loss only)
------------------------------
``free_bits_per_pixel`` (default 0.01, the paper's "0.01 nats/data-dim", Appendix A) times the
number of data dimensions C*H*W (MNIST: 7.84 nats) floors the *batch mean of the total KL*:

    loss = mean_b distortion_b + beta * max(mean_b rate_b, lambda * C*H*W).

That is the authors' rule: Chen et al. Appendix C writes the floor as
``sum_j max(lambda, E_x[KL_j])`` over groups j, and the IAF code the VLAE builds on
(openai/iaf, ``models.py``: "Minimum number of bits per featuremap, averaged across
minibatch"; ``tf_train.py``: ``kl_ave = reduce_mean(kl, [0]); maximum(kl_ave, kl_min)``)
takes the minibatch mean first and floors it second. With one group (the whole code, as for
the VLAE's 64-dim z) that is the line above. The training loop applies it
(``vlae_models.train.objective``, with ``VLAE.free_bits_nats`` as the default floor); the
reported ``rate`` is always the true (estimated) KL. ``free_bits_per_pixel=0`` disables it.

Arms of the paper's ablation (all from this module, see ``docs/vlae.md``)
-------------------------------------------------------------------------
* VLAE: defaults. * Gaussian prior: ``prior="gaussian"``.
* Large receptive field: e.g. ``pixelcnn_layers=12, pixelcnn_kernel=7`` (reach 36 covers the
  whole 28 x 28 past) with ``free_bits_per_pixel=0``: z should collapse (KL -> 0).
* Factorised decoder with the same encoder and AF prior: ``pixelcnn_kernel=1`` (the decoder
  sees no pixels). The plain factorised VAE is ``"beta-vae"`` in :mod:`vlae_models.vae`.
* No latent code: ``"pixelcnn"`` in :mod:`vlae_models.pixelcnn`.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from vlae_models.config import ModelConfig, config_dataclass
from vlae_models.core import LatentModel, ModelError, ModelOutput, register_model
from vlae_models.distributions import (
    gaussian_log_prob,
    rsample,
    split_gaussian,
    std_normal_log_prob,
)
from vlae_models.entropy import CalibratedSteps, compress_vectors, decompress_vectors
from vlae_models.layers.flows import AutoregressiveFlowPrior
from vlae_models.layers.resblocks import check_image_shape, down_stem, up_stem
from vlae_models.likelihoods import likelihood_from_config
from vlae_models.pixelcnn import AutoregressiveDecoder, check_mode

PRIORS = ("af", "gaussian")


@config_dataclass
class VLAEConfig(ModelConfig):
    """Sizes default to the paper's binarized-MNIST model (Chen et al. 2017, Appendix A).

    Images are ``in_channels`` x ``image_size`` x ``image_size`` (``image_size`` divisible by
    4); ``image_shape`` gives the triple.
    """

    z_dim: int = 64  # paper, Appendix A
    encoder_width: int = 64  # channels at 1/4 resolution (the 1/2 stage has half)
    encoder_res_blocks: int = 2
    cond_width: int = 64  # the conditioning ResNet's channels at 1/4 resolution
    cond_res_blocks: int = 2
    cond_channels: int = 4  # the z feature map fed to the PixelCNN (paper: 28 x 28 x 4)
    pixelcnn_layers: int = 6
    pixelcnn_filters: int = 12
    pixelcnn_kernel: int = 3  # 1 gives a factorised decoder (no pixel context)
    pixelcnn_res_blocks: int = 4
    prior: str = "af"  # "af" (autoregressive flow) or "gaussian" (N(0, I))
    flow_steps: int = 4
    flow_hidden: int = 640
    flow_hidden_layers: int = 2  # the paper's "3-layer MADE": 2 hidden layers + output
    flow_mean_only: bool = True  # paper: shift-only steps (log-det exactly 0)
    free_bits_per_pixel: float = 0.01  # nats per data dimension; 0 disables

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return (self.in_channels, self.image_size, self.image_size)


@register_model(
    "vlae",
    VLAEConfig,
    "Variational Lossy Autoencoder: small-window PixelCNN decoder, AF (or Gaussian) prior",
)
class VLAE(CalibratedSteps, LatentModel):
    """Chen et al. 2017, "Variational Lossy Autoencoder" (see the module docstring).

    ``forward(x, z=None)`` returns distortion = -log p(x|z) and rate = log q(z|x) - log p(z)
    per example at one z ~ q(z|x) (or at the given z); extras hold ``z``, ``log_qz``,
    ``log_pz`` and ``kl_before_free_bits`` (= rate; the free-bits floor acts only in the
    training objective, :func:`vlae_models.train.objective`).
    """

    has_latents: ClassVar[bool] = True
    autoregressive: ClassVar[bool] = True  # sample/reconstruct cost H*W sequential passes
    decoder_rows_per_pass: ClassVar[int] = 2048  # bounds memory in log_importance_weights

    def __init__(self, config: VLAEConfig) -> None:
        super().__init__()
        _validate(config)
        self.config = config
        c, size = config.in_channels, config.image_size
        side = size // 4
        self._grid = (config.cond_width, side, side)
        self.likelihood = likelihood_from_config(config)
        self.encoder = nn.Sequential(
            down_stem(c, config.encoder_width, n_res=config.encoder_res_blocks),
            nn.SiLU(),
            nn.Flatten(),
            nn.Linear(config.encoder_width * side * side, 2 * config.z_dim),
        )
        self.cond_in = nn.Linear(config.z_dim, config.cond_width * side * side)
        self.cond_net = up_stem(
            config.cond_width, config.cond_channels, n_res=config.cond_res_blocks
        )
        self.decoder = AutoregressiveDecoder(
            self.likelihood,
            c,
            config.cond_channels,
            config.pixelcnn_layers,
            config.pixelcnn_filters,
            config.pixelcnn_kernel,
            config.pixelcnn_res_blocks,
        )
        self.prior = (
            AutoregressiveFlowPrior(
                config.z_dim,
                config.flow_steps,
                hidden=config.flow_hidden,
                n_hidden_layers=config.flow_hidden_layers,
                mean_only=config.flow_mean_only,
            )
            if config.prior == "af"
            else None
        )
        self.init_steps(config.z_dim)

    # --- the pieces ---------------------------------------------------------------------------

    @property
    def free_bits_nats(self) -> float:
        """The free-bits floor on the batch-mean total KL: lambda * C*H*W nats (MNIST: 7.84)."""
        c, h, w = self.config.image_shape
        return self.config.free_bits_per_pixel * c * h * w

    def encode(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """q(z|x): (mean, std), each (B, z_dim)."""
        check_image_shape(x, self.config.in_channels, self.config.image_size, "vlae")
        return split_gaussian(self.encoder(x), dim=1)

    def condition(self, z: Tensor) -> Tensor:
        """z (B, z_dim) -> the PixelCNN's conditioning map (B, cond_channels, H, W)."""
        return self.cond_net(self.cond_in(z).view(z.shape[0], *self._grid))

    def prior_log_prob(self, z: Tensor) -> Tensor:
        """log p(z) in nats, shape (B,); for the AF prior the flow's log-det is included."""
        if self.prior is None:
            return std_normal_log_prob(z).sum(-1)
        with torch.autocast(z.device.type, enabled=False):  # the prior stays in float32
            return self.prior.log_prob(z.float())

    def sample_prior(self, n: int) -> Tensor:
        """n codes z ~ p(z), shape (n, z_dim)."""
        if self.prior is None:
            device = next(self.parameters()).device
            return torch.randn(n, self.config.z_dim, device=device)
        return self.prior.sample(n)

    # --- the protocol -------------------------------------------------------------------------

    def forward(self, x: Tensor, z: Tensor | None = None) -> ModelOutput:
        mean, std = self.encode(x)
        if z is None:
            z = rsample(mean, std)
        log_qz = gaussian_log_prob(z, mean, std).sum(-1)
        log_pz = self.prior_log_prob(z)
        rate = log_qz - log_pz
        distortion = -self.decoder.log_prob(x, self.condition(z))
        extras = {"z": z, "log_qz": log_qz, "log_pz": log_pz, "kl_before_free_bits": rate}
        return ModelOutput(distortion=distortion, rate=rate, extras=extras)

    def compile_targets(self) -> list[nn.Module]:
        return [self.decoder.net]  # the PixelCNN: nearly all of the IWAE's time

    def posterior_moments(self, x: Tensor) -> list[tuple[Tensor, Tensor]]:
        return [self.encode(x)]

    def iw_posterior(self, x: Tensor) -> tuple[Tensor, Tensor]:
        return self.encode(x)

    def log_importance_weights(
        self, x: Tensor, k: int, posterior: tuple[Tensor, Tensor] | None = None
    ) -> Tensor:
        """log p(x|z_j) + log p(z_j) - log q(z_j|x) for k draws z_j ~ q(z|x): shape (B, k).

        One encoder pass (or ``posterior``, shared by the chunks of an estimate); the B*k
        decoder rows run in slices of ``decoder_rows_per_pass``.
        """
        mean, std = posterior if posterior is not None else self.encode(x)
        b, d = mean.shape
        z = mean.unsqueeze(1) + std.unsqueeze(1) * torch.randn(b, k, d, device=x.device)
        log_qz = gaussian_log_prob(z, mean.unsqueeze(1), std.unsqueeze(1)).sum(-1)  # (B, k)
        z = z.reshape(b * k, d)
        log_pz = self.prior_log_prob(z).view(b, k)
        x_rep = x.repeat_interleave(k, dim=0)
        log_px = torch.cat(
            [
                self.decoder.log_prob(x_rep[i : i + n], self.condition(z[i : i + n]))
                for i, n in _slices(b * k, self.decoder_rows_per_pass)
            ]
        ).view(b, k)
        return log_px + log_pz - log_qz

    @torch.no_grad()
    def decode(self, z: Tensor, greedy: bool = False) -> tuple[Tensor, Tensor]:
        """Draw x ~ p(x|z) pixel by pixel: images (B, C, H, W) and log p(x|z) (B,) in nats.

        The log-probability is summed over the sampling steps; it equals ``-forward(x, z)
        .distortion`` for the drawn x (the tests check this). ``greedy=True`` takes the most
        likely value of each pixel given z and the pixels before it: deterministic.
        """
        cond = self.condition(z)
        shape = (z.shape[0], *self.config.image_shape)
        return self.decoder.sample(cond, shape, greedy=greedy)

    @torch.no_grad()
    def reconstruct(self, x: Tensor, mode: str = "mean") -> Tensor:
        """A "decompression" (paper, Fig. 1a): z = the posterior mean, pixels drawn from p(x|z).

        ``mode="sample"`` returns the drawn pixels; ``"mean"`` the conditional means
        E[x_i | x_<i, z] along the drawn path (values in [0, 1]); ``"mode"`` the greedy
        decoding, each pixel the most likely value given z and the pixels before it: the
        deterministic reconstruction the VLAE is scored with as a method.
        """
        check_mode(mode)
        z, _ = self.encode(x)
        drawn, _ = self.decode(z, greedy=mode == "mode")
        return self.decoder.output(drawn, self.condition(z), mode)

    @torch.no_grad()
    def compress(self, x: Tensor) -> dict[str, Any]:
        """Real bits for z: the posterior mean, mapped through the flow prior to its
        standard-normal coordinates eps (parallel), quantized and coded under N(0, I)
        (:func:`vlae_models.entropy.compress_vectors`); with the Gaussian prior eps = z."""
        mean, std = self.encode(x)
        eps = mean if self.prior is None else self.prior(mean.float())[0]
        strings = compress_vectors(eps, std, self.calibrated_steps)
        return {"strings": strings, "shape": list(mean.shape)}

    @torch.no_grad()
    def decompress(
        self, strings: list[bytes], shape: list[int], seed: int = 0, mode: str = "sample"
    ) -> dict[str, Tensor]:
        """Decode eps, invert the flow (sequential) to z, and draw x ~ p(x | z) through the
        PixelCNN with a fixed ``seed``: deterministic, and what the decoder really produces.
        ``mode="mean"`` returns instead each pixel's conditional mean E[x_i | x_<i, z] along
        that same drawn path: the same z, the decoder's mean (the perception-distortion
        comparison, docs/metrics.md).

        Greedy decoding (``reconstruct(x, mode="mode")``) is deterministic too, but degenerate
        for this model: from a blank context the most likely value of every pixel is the
        background, so on 8-bit MNIST it decoded every digit to an all-black image.
        """
        if shape[1:] != [self.config.z_dim]:
            raise ModelError(f"vlae stream does not fit: latent {shape}")
        try:
            steps, device = self.calibrated_steps, self.latent_steps.device
            eps = decompress_vectors(strings, shape, device, steps)
        except ValueError as err:
            raise ModelError(f"vlae stream does not fit: {err}") from None
        z = eps if self.prior is None else self.prior.inverse(eps)
        devices = [z.device.index or 0] if z.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(seed)
            drawn, _ = self.decode(z)
        return {"x_hat": self.decoder.output(drawn, self.condition(z), mode)}

    @torch.no_grad()
    def sample(self, n: int, mode: str = "mean") -> Tensor:
        """n images: z ~ p(z) (through the flow), then pixels drawn autoregressively."""
        check_mode(mode)
        z = self.sample_prior(n)
        drawn, _ = self.decode(z)
        return self.decoder.output(drawn, self.condition(z), mode)


def _slices(total: int, size: int) -> list[tuple[int, int]]:
    return [(i, min(size, total - i)) for i in range(0, total, size)]


def _validate(config: VLAEConfig) -> None:
    if config.image_size % 4:
        raise ModelError(f"image_size must be divisible by 4, got {config.image_size}")
    if config.prior not in PRIORS:
        raise ModelError(f"prior must be one of {PRIORS}, got '{config.prior}'")
    if config.z_dim < 1 or config.cond_channels < 1:
        raise ModelError("z_dim and cond_channels must be >= 1")
    if config.pixelcnn_kernel < 1 or config.pixelcnn_kernel % 2 == 0:
        raise ModelError(f"pixelcnn_kernel must be odd, got {config.pixelcnn_kernel}")
    if config.free_bits_per_pixel < 0:
        raise ModelError(f"free_bits_per_pixel must be >= 0, got {config.free_bits_per_pixel}")
