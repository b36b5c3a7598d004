"""Decoder likelihoods p(x|z): the "distortion" of every model is -log p(x|z) in nats.

Four choices, picked by the ``likelihood`` field of a model config:

``bernoulli``
    For binary data ({0, 1}). A true code length: -log2 p(x|z) bits codes x exactly.
``logistic``
    Discretized logistic per channel (Kingma et al. 2016, IAF; Salimans et al. 2017,
    PixelCNN++) over the 256 levels of 8-bit data. Also a true code length, so bits/dim of a
    negative ELBO is a lossless rate.
``logistic-mixture``
    A mixture of ``n_mix`` discretized logistics per pixel, with PixelCNN++'s linear
    dependence between channels (for RGB). A true code length too.
``gaussian``
    Gaussian with a fixed standard deviation ``sigma`` on x in [0, 1]. This is a *density*,
    not a code length: its bits/dim is not a lossless rate. It is here for MSE-style lossy work:
    with D = C*H*W dimensions,

        distortion = SSE / (2 sigma^2) + D/2 * log(2 pi sigma^2),
        MSE = (distortion - D/2 * log(2 pi sigma^2)) * 2 sigma^2 / D,
        PSNR = -10 log10(MSE)           (peak 1 on [0, 1], the same as peak 255 on 8-bit),

    and minimising ``distortion + beta * rate`` is minimising ``MSE + lambda * rate`` with
    ``lambda = 2 sigma^2 beta / D`` (see :func:`gaussian_distortion_to_mse`).

Every likelihood works in float32 (it upcasts decoder outputs), so bf16 autocast never touches
the likelihood math. Parameters arrive as one tensor (B, P, H, W) from the decoder, with
``P = param_channels`` for the data's C channels. ``log_prob`` sums over C, H, W (one
convention: sum over dimensions, so beta means the same for every likelihood).

``mean`` returns the distribution's mean in [0, 1] (for the logistic family, the mean of the
underlying continuous logistics, clipped to [0, 1]); ``sample`` draws valid data values
({0, 1} or k/255).
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from vlae_models.errors import ModelError

LIKELIHOODS = ("bernoulli", "logistic", "logistic-mixture", "gaussian")
_MIN_LOG_SCALE = -7.0  # as PixelCNN++


class Likelihood:
    """Base class: one family of p(x|z), parameterised by a decoder output tensor."""

    name: str = ""
    binary: bool = False  # expects data in {0, 1}
    discrete: bool = True  # log_prob is a probability mass (a code length)

    def __init__(self, channels: int) -> None:
        self.channels = channels

    @property
    def param_channels(self) -> int:
        raise NotImplementedError

    def log_prob(self, params: Tensor, x: Tensor) -> Tensor:
        """log p(x|params) in nats, summed over (C, H, W): shape (B,)."""
        raise NotImplementedError

    def mean(self, params: Tensor) -> Tensor:
        raise NotImplementedError

    def sample(self, params: Tensor) -> Tensor:
        raise NotImplementedError

    def mode(self, params: Tensor) -> Tensor:
        """The most likely data value of each pixel, in model units ([0, 1]).

        For one-channel 8-bit likelihoods, by scoring all 256 values of every pixel (meant for
        one autoregressive step at a time: the work is 256 x the pixels given). Coupled colour
        channels have no per-pixel mode here.
        """
        if self.channels != 1:
            raise ModelError(
                f"likelihood '{self.name}' has no per-pixel mode for {self.channels} channels"
            )
        b, p, h, w = params.shape
        flat = params.permute(0, 2, 3, 1).reshape(-1, p, 1, 1)
        values = torch.arange(256, device=params.device, dtype=torch.float32) / 255.0
        scores = self.log_prob(
            flat.repeat_interleave(256, dim=0), values.repeat(len(flat)).view(-1, 1, 1, 1)
        ).view(len(flat), 256)
        return values[scores.argmax(1)].view(b, h, w, 1).permute(0, 3, 1, 2)


def _softplus(t: Tensor) -> Tensor:
    """softplus(t) = max(t, 0) + log(1 + exp(-|t|)).

    Same values as ``F.softplus`` (to ~1e-7), but built from ops that PyTorch vectorises on
    CPU (its softplus/log1p kernels are ~5x slower), which matters when importance sampling
    evaluates the likelihood of k * N images.
    """
    return torch.relu(t) + torch.log(1.0 + torch.exp(-t.abs()))


class Bernoulli(Likelihood):
    """Independent Bernoulli per pixel, parameterised by logits."""

    name = "bernoulli"
    binary = True

    @property
    def param_channels(self) -> int:
        return self.channels

    def log_prob(self, params: Tensor, x: Tensor) -> Tensor:
        logits = params.float()
        return (x.float() * logits - _softplus(logits)).flatten(1).sum(1)

    def mean(self, params: Tensor) -> Tensor:
        return torch.sigmoid(params.float())

    def sample(self, params: Tensor) -> Tensor:
        return torch.bernoulli(self.mean(params))

    def mode(self, params: Tensor) -> Tensor:
        return (params.float() > 0).float()


def discretized_logistic_log_prob(y: Tensor, mean: Tensor, log_scale: Tensor) -> Tensor:
    """Elementwise log P(bin of y) under a logistic(mean, exp(log_scale)) discretized to 256 bins.

    ``y`` holds 8-bit values mapped to [-1, 1] (bin centres 2k/255 - 1, half-width 1/255). The
    two edge bins extend to -inf and +inf so the 256 probabilities sum to one exactly. The bin
    mass sigma(a) - sigma(b) is computed in log space as

        log sigma(a) + log sigma(-b) + log(1 - exp(b - a)),

    which is exact and stable for tiny and huge scales alike (no PixelCNN++ pdf fallback).
    """
    log_scale = log_scale.clamp(min=_MIN_LOG_SCALE)
    inv_scale = torch.exp(-log_scale)
    # Bin edges from the integer level k, so that neighbouring bins share the very same float
    # edge and the 256 masses telescope to one.
    k = torch.round((y + 1.0) * 127.5)
    upper = inv_scale * ((k + 0.5) / 127.5 - 1.0 - mean)
    lower = inv_scale * ((k - 0.5) / 127.5 - 1.0 - mean)
    inf = torch.full_like(upper, math.inf)
    upper = torch.where(k >= 255, inf, upper)
    lower = torch.where(k <= 0, -inf, lower)
    return F.logsigmoid(upper) + F.logsigmoid(-lower) + torch.log(-torch.expm1(lower - upper))


def _to_symmetric(x: Tensor) -> Tensor:
    return x.float() * 2.0 - 1.0


def _quantize(y: Tensor) -> Tensor:
    """[-1, 1] continuous values -> nearest 8-bit level k/255 in [0, 1]."""
    return torch.round((y.clamp(-1.0, 1.0) + 1.0) * 127.5) / 255.0


def _logistic_noise(shape: torch.Size, device: torch.device) -> Tensor:
    u = torch.rand(shape, device=device).clamp(1e-5, 1.0 - 1e-5)
    return torch.log(u) - torch.log1p(-u)


class DiscretizedLogistic(Likelihood):
    """One discretized logistic per channel and pixel, channels independent given z."""

    name = "logistic"

    @property
    def param_channels(self) -> int:
        return 2 * self.channels

    def _split(self, params: Tensor) -> tuple[Tensor, Tensor]:
        mean, log_scale = params.float().chunk(2, dim=1)
        return mean, log_scale.clamp(min=_MIN_LOG_SCALE)

    def log_prob(self, params: Tensor, x: Tensor) -> Tensor:
        mean, log_scale = self._split(params)
        return discretized_logistic_log_prob(_to_symmetric(x), mean, log_scale).flatten(1).sum(1)

    def mean(self, params: Tensor) -> Tensor:
        mean, _ = self._split(params)
        return ((mean.clamp(-1.0, 1.0) + 1.0) / 2.0).clamp(0.0, 1.0)

    def sample(self, params: Tensor) -> Tensor:
        mean, log_scale = self._split(params)
        return _quantize(mean + torch.exp(log_scale) * _logistic_noise(mean.shape, mean.device))


class DiscretizedLogisticMixture(Likelihood):
    """Mixture of ``n_mix`` discretized logistics per pixel (Salimans et al. 2017, PixelCNN++).

    One set of mixture weights per pixel is shared by its channels; channel c's mean within a
    component is ``mu_c + sum_{c' < c} alpha_{c c'} * y_{c'}`` (PixelCNN++'s linear
    autoregression over colour channels; no effect for grey images).
    Parameter layout along dim 1: K logits, K*C means, K*C log-scales, K*C*(C-1)/2 coefficients.
    """

    name = "logistic-mixture"

    def __init__(self, channels: int, n_mix: int) -> None:
        super().__init__(channels)
        if n_mix < 1:
            raise ModelError(f"n_mix must be >= 1, got {n_mix}")
        self.n_mix = n_mix
        self.n_coeffs = channels * (channels - 1) // 2

    @property
    def param_channels(self) -> int:
        k, c = self.n_mix, self.channels
        return k + 2 * k * c + k * self.n_coeffs

    def _split(self, params: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        params = params.float()
        b, _, h, w = params.shape
        k, c = self.n_mix, self.channels
        logits, means, log_scales, coeffs = params.split(
            [k, k * c, k * c, k * self.n_coeffs], dim=1
        )
        means = means.reshape(b, k, c, h, w)
        log_scales = log_scales.reshape(b, k, c, h, w).clamp(min=_MIN_LOG_SCALE)
        coeffs = torch.tanh(coeffs.reshape(b, k, self.n_coeffs, h, w))
        return logits, means, log_scales, coeffs

    def _channel_means(self, means: Tensor, coeffs: Tensor, y: Tensor) -> Tensor:
        """Per-component channel means given the (observed or sampled) lower channels y."""
        adjusted = [means[:, :, 0]]
        j = 0
        for c in range(1, self.channels):
            m = means[:, :, c]
            for c_prev in range(c):
                m = m + coeffs[:, :, j] * y[:, c_prev].unsqueeze(1)
                j += 1
            adjusted.append(m)
        return torch.stack(adjusted, dim=2)  # (B, K, C, H, W)

    def log_prob(self, params: Tensor, x: Tensor) -> Tensor:
        logits, means, log_scales, coeffs = self._split(params)
        y = _to_symmetric(x)
        means = self._channel_means(means, coeffs, y)
        per_channel = discretized_logistic_log_prob(y.unsqueeze(1), means, log_scales)
        per_component = per_channel.sum(2) + torch.log_softmax(logits, dim=1)  # (B, K, H, W)
        return torch.logsumexp(per_component, dim=1).flatten(1).sum(1)

    def mean(self, params: Tensor) -> Tensor:
        logits, means, _, coeffs = self._split(params)
        weights = torch.softmax(logits, dim=1).unsqueeze(2)  # (B, K, 1, H, W)
        # Component means channel by channel, feeding the mixture mean of lower channels.
        y = torch.zeros_like(means[:, 0])
        for c in range(self.channels):
            mc = self._channel_means(means, coeffs, y)[:, :, c]
            y[:, c] = (weights[:, :, 0] * mc).sum(1)
        return ((y.clamp(-1.0, 1.0) + 1.0) / 2.0).clamp(0.0, 1.0)

    def sample(self, params: Tensor) -> Tensor:
        logits, means, log_scales, coeffs = self._split(params)
        b, k, c, h, w = means.shape
        comp = torch.distributions.Categorical(logits=logits.permute(0, 2, 3, 1)).sample()
        onehot = F.one_hot(comp, k).permute(0, 3, 1, 2).float().unsqueeze(2)  # (B, K, 1, H, W)
        y = torch.zeros(b, c, h, w, device=means.device)
        for ch in range(c):
            mc = (self._channel_means(means, coeffs, y)[:, :, ch] * onehot[:, :, 0]).sum(1)
            sc = (log_scales[:, :, ch] * onehot[:, :, 0]).sum(1)
            y[:, ch] = mc + torch.exp(sc) * _logistic_noise(mc.shape, mc.device)
            y[:, ch] = y[:, ch].clamp(-1.0, 1.0)
        return _quantize(y)


class FixedGaussian(Likelihood):
    """N(x; mu, sigma^2) per dimension with a fixed sigma (a density: MSE-style lossy work)."""

    name = "gaussian"
    discrete = False

    def __init__(self, channels: int, sigma: float) -> None:
        super().__init__(channels)
        if sigma <= 0:
            raise ModelError(f"gaussian_std must be > 0, got {sigma}")
        self.sigma = sigma

    @property
    def param_channels(self) -> int:
        return self.channels

    def log_prob(self, params: Tensor, x: Tensor) -> Tensor:
        sq = ((x.float() - params.float()) / self.sigma) ** 2
        per_dim = -0.5 * (sq + math.log(2.0 * math.pi)) - math.log(self.sigma)
        return per_dim.flatten(1).sum(1)

    def mean(self, params: Tensor) -> Tensor:
        return params.float().clamp(0.0, 1.0)

    def sample(self, params: Tensor) -> Tensor:
        noisy = params.float() + self.sigma * torch.randn_like(params.float())
        return torch.round(noisy.clamp(0.0, 1.0) * 255.0) / 255.0

    def mode(self, params: Tensor) -> Tensor:
        return torch.round(self.mean(params) * 255.0) / 255.0


def make_likelihood(
    name: str, channels: int, *, n_mix: int = 5, gaussian_std: float = 0.1
) -> Likelihood:
    """Build the likelihood named ``name`` for data with ``channels`` channels."""
    if name == "bernoulli":
        return Bernoulli(channels)
    if name == "logistic":
        return DiscretizedLogistic(channels)
    if name == "logistic-mixture":
        return DiscretizedLogisticMixture(channels, n_mix)
    if name == "gaussian":
        return FixedGaussian(channels, gaussian_std)
    raise ModelError(f"unknown likelihood '{name}'; choose one of {', '.join(LIKELIHOODS)}")


def gaussian_distortion_to_mse(distortion: Tensor, dims: int, sigma: float) -> Tensor:
    """Invert the fixed-variance Gaussian distortion (nats, per image) to the MSE on [0, 1]."""
    const = 0.5 * dims * math.log(2.0 * math.pi * sigma**2)
    return (distortion - const) * 2.0 * sigma**2 / dims


def likelihood_from_config(config: Any) -> Likelihood:
    """The likelihood a model config names (fields ``likelihood``, ``in_channels`` and, where
    the config has them, ``n_mix`` and ``gaussian_std``)."""
    return make_likelihood(
        config.likelihood,
        config.in_channels,
        n_mix=getattr(config, "n_mix", 5),
        gaussian_std=getattr(config, "gaussian_std", 0.1),
    )
