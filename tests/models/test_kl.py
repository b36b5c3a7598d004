"""Analytic KL terms against Monte Carlo estimates, for the helpers and inside the models."""

from __future__ import annotations

import torch

from vlae_models.core import build
from vlae_models.distributions import (
    gaussian_log_prob,
    kl_diag_gaussians,
    kl_std_normal,
    split_gaussian,
    std_normal_log_prob,
)

N_MC = 200_000


def _mc_check(analytic: torch.Tensor, samples: torch.Tensor) -> None:
    """The analytic value lies within 5 standard errors of the Monte Carlo mean."""
    mc, se = samples.mean(0), samples.std(0) / samples.shape[0] ** 0.5
    assert ((mc - analytic).abs() <= 5 * se + 1e-6).all(), (mc, analytic, se)


def test_kl_between_diagonal_gaussians_matches_monte_carlo():
    torch.manual_seed(0)
    mq, sq = torch.tensor([0.3, -1.0, 2.0]), torch.tensor([0.5, 1.3, 0.2])
    mp, sp = torch.tensor([0.0, 0.5, 1.0]), torch.tensor([1.0, 0.7, 2.5])
    z = mq + sq * torch.randn(N_MC, 3)
    samples = gaussian_log_prob(z, mq, sq) - gaussian_log_prob(z, mp, sp)
    _mc_check(kl_diag_gaussians(mq, sq, mp, sp), samples)


def test_kl_to_standard_normal_matches_monte_carlo_and_general_formula():
    torch.manual_seed(1)
    m, s = torch.tensor([0.0, 1.5, -0.7]), torch.tensor([1.0, 0.3, 2.0])
    z = m + s * torch.randn(N_MC, 3)
    _mc_check(kl_std_normal(m, s), gaussian_log_prob(z, m, s) - std_normal_log_prob(z))
    one, zero = torch.ones(3), torch.zeros(3)
    torch.testing.assert_close(kl_std_normal(m, s), kl_diag_gaussians(m, s, zero, one))
    torch.testing.assert_close(kl_std_normal(zero, one), zero)


def test_split_gaussian_starts_at_unit_std():
    mean, std = split_gaussian(torch.zeros(2, 8))
    torch.testing.assert_close(std, torch.ones(2, 4), atol=2e-4, rtol=0)
    assert (mean == 0).all()


def test_beta_vae_rate_is_the_kl_of_its_posterior():
    torch.manual_seed(2)
    model = build("beta-vae", latent_dim=4, width=16).eval()
    x = (torch.rand(3, 1, 28, 28) > 0.5).float()
    with torch.no_grad():
        rate = model(x).rate
        mean, std = model.encode(x)
        z = mean + std * torch.randn(50_000, *mean.shape)
        samples = (gaussian_log_prob(z, mean, std) - std_normal_log_prob(z)).sum(-1)
    _mc_check(rate, samples)


def test_hvae_kl_plus_distortion_matches_its_importance_weights():
    """-(rate + distortion) and the k=1 importance weight both estimate the same ELBO."""
    torch.manual_seed(3)
    model = build("hvae", levels=3, width=16, z_channels=2).eval()
    x = (torch.rand(2, 1, 28, 28) > 0.5).float()
    with torch.no_grad():
        reps = 600
        xr = x.repeat(reps, 1, 1, 1)
        out = model(xr)
        analytic = -(out.rate + out.distortion).view(reps, 2)
        weights = model.log_importance_weights(xr, 1).view(reps, 2)
        assert out.extras["kl_levels"].shape == (2 * reps, 3)
        torch.testing.assert_close(out.extras["kl_levels"].sum(1), out.rate)
    diff = analytic.mean(0) - weights.mean(0)
    se = (analytic.var(0) / reps + weights.var(0) / reps).sqrt()
    assert (diff.abs() <= 5 * se).all(), (diff, se)
