"""Decoder likelihoods: normalisation over the 256 levels, edges, gradients, the PSNR link."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
import torch.nn.functional as F

from vlae_models.core import ModelError
from vlae_models.likelihoods import (
    Bernoulli,
    DiscretizedLogistic,
    DiscretizedLogisticMixture,
    FixedGaussian,
    _softplus,
    discretized_logistic_log_prob,
    gaussian_distortion_to_mse,
    make_likelihood,
)

LEVELS = torch.arange(256, dtype=torch.float32) / 255.0  # every 8-bit value on [0, 1]


def test_discretized_logistic_sums_to_one_over_256_values():
    means = torch.tensor([-1.3, -1.0, -0.5, 0.0, 0.37, 0.99, 1.0, 1.4])
    log_scales = torch.tensor([-7.0, -5.0, -3.0, -1.0, 0.0, 1.0, 3.0])
    mean, log_scale = torch.meshgrid(means, log_scales, indexing="ij")
    y = (LEVELS * 2 - 1).view(256, 1, 1)
    log_p = discretized_logistic_log_prob(y, mean.unsqueeze(0), log_scale.unsqueeze(0))
    total = torch.logsumexp(log_p.double(), dim=0).exp()
    assert torch.isfinite(log_p).all()
    torch.testing.assert_close(total, torch.ones_like(total), atol=1e-5, rtol=0)


def test_discretized_logistic_matches_the_cdf_difference():
    mean, log_scale = torch.tensor(0.1), torch.tensor(-2.0)
    y = torch.tensor([-1.0, -0.2, 0.1, 0.6, 1.0])
    s = math.exp(-2.0)
    cdf = lambda t: torch.sigmoid((t - mean) / s)  # noqa: E731
    upper = torch.where(y > 0.99, torch.ones_like(y), cdf(y + 1 / 255))
    lower = torch.where(y < -0.99, torch.zeros_like(y), cdf(y - 1 / 255))
    expected = torch.log(upper - lower)
    got = discretized_logistic_log_prob(y, mean, log_scale)
    torch.testing.assert_close(got, expected, atol=1e-4, rtol=1e-4)


def _total_mass(lik, params: torch.Tensor) -> torch.Tensor:
    """Sum over the 256 values of p(x | params) for single-pixel, single-channel params (B, P)."""
    b = len(params)
    rep = params.view(b, -1, 1, 1).repeat(256, 1, 1, 1)  # value-major: row v*b + i
    x = LEVELS.repeat_interleave(b).view(-1, 1, 1, 1)
    log_p = lik.log_prob(rep, x).view(256, b)
    return log_p.double().logsumexp(0).exp()


def test_single_logistic_likelihood_is_normalised_per_pixel():
    torch.manual_seed(0)
    lik = DiscretizedLogistic(channels=1)
    total = _total_mass(lik, torch.randn(7, lik.param_channels) * 2)
    torch.testing.assert_close(total, torch.ones(7, dtype=torch.float64), atol=1e-5, rtol=0)


def test_logistic_mixture_sums_to_one_grey():
    torch.manual_seed(0)
    lik = DiscretizedLogisticMixture(channels=1, n_mix=4)
    total = _total_mass(lik, torch.randn(7, lik.param_channels) * 2)
    torch.testing.assert_close(total, torch.ones(7, dtype=torch.float64), atol=1e-5, rtol=0)


def test_logistic_mixture_with_channel_coefficients_sums_to_one():
    """Two channels with PixelCNN++'s linear dependence: sum over all 256 x 256 pairs."""
    torch.manual_seed(1)
    lik = DiscretizedLogisticMixture(channels=2, n_mix=3)
    assert lik.n_coeffs == 1
    params = torch.randn(1, lik.param_channels, 1, 1)
    pairs = torch.tensor(list(itertools.product(range(256), repeat=2)), dtype=torch.float32)
    x = (pairs / 255.0).view(-1, 2, 1, 1)
    log_p = lik.log_prob(params.expand(len(x), -1, -1, -1), x)
    torch.testing.assert_close(
        log_p.double().logsumexp(0).exp(), torch.tensor(1.0, dtype=torch.float64), atol=1e-4, rtol=0
    )


def test_logistic_gradients_are_finite_at_the_edges():
    lik = DiscretizedLogisticMixture(channels=1, n_mix=2)
    params = torch.randn(4, lik.param_channels, 2, 2, requires_grad=True)
    x = torch.tensor([0.0, 1.0, 0.5, 1.0]).view(1, 1, 2, 2).expand(4, 1, 2, 2)
    lik.log_prob(params, x).sum().backward()
    assert torch.isfinite(params.grad).all()


def test_bernoulli_is_normalised_and_softplus_is_exact():
    t = torch.linspace(-40, 40, 1001)
    torch.testing.assert_close(_softplus(t), F.softplus(t), atol=2e-6, rtol=1e-6)
    lik = Bernoulli(channels=1)
    logits = torch.randn(6, 1, 3, 3) * 4
    p0 = lik.log_prob(logits[:, :, :1, :1], torch.zeros(6, 1, 1, 1)).exp()
    p1 = lik.log_prob(logits[:, :, :1, :1], torch.ones(6, 1, 1, 1)).exp()
    torch.testing.assert_close(p0 + p1, torch.ones(6), atol=1e-6, rtol=0)


def test_gaussian_distortion_maps_to_mse():
    sigma = 0.05
    lik = FixedGaussian(channels=1, sigma=sigma)
    x = torch.rand(4, 1, 5, 5)
    mu = (x + 0.03 * torch.randn_like(x)).clamp(0, 1)
    distortion = -lik.log_prob(mu, x)
    mse = ((x - mu) ** 2).flatten(1).mean(1)
    torch.testing.assert_close(
        gaussian_distortion_to_mse(distortion, 25, sigma), mse, rtol=1e-4, atol=1e-7
    )
    assert not lik.discrete


def test_samples_are_valid_data_values():
    torch.manual_seed(0)
    for name in ("logistic", "logistic-mixture", "gaussian"):
        lik = make_likelihood(name, 3, n_mix=2)
        s = lik.sample(torch.randn(2, lik.param_channels, 4, 4))
        assert s.shape == (2, 3, 4, 4)
        torch.testing.assert_close(s * 255, torch.round(s * 255))
        assert s.min() >= 0 and s.max() <= 1
        m = lik.mean(torch.randn(2, lik.param_channels, 4, 4))
        assert m.min() >= 0 and m.max() <= 1
    b = make_likelihood("bernoulli", 1).sample(torch.randn(2, 1, 4, 4))
    assert set(b.unique().tolist()) <= {0.0, 1.0}


def test_unknown_likelihood_is_a_model_error():
    with pytest.raises(ModelError, match="unknown likelihood"):
        make_likelihood("poisson", 1)


def test_mode_is_the_most_likely_value():
    torch.manual_seed(0)
    lik = make_likelihood("logistic-mixture", 1, n_mix=3)
    params = torch.randn(5, lik.param_channels, 1, 1)
    mode = lik.mode(params)
    values = torch.arange(256.0) / 255.0
    for i in range(5):
        scores = lik.log_prob(params[i : i + 1].expand(256, -1, -1, -1), values.view(-1, 1, 1, 1))
        assert mode[i].item() == pytest.approx(values[scores.argmax()].item())
    bern = make_likelihood("bernoulli", 1)
    logits = torch.tensor([-2.0, 0.5]).view(2, 1, 1, 1)
    assert bern.mode(logits).flatten().tolist() == [0.0, 1.0]
