"""IWAE on a linear-Gaussian model with closed-form log p(x); ELBO-surgery MI limits."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from vlae_models.core import LatentModel, ModelOutput
from vlae_models.distributions import gaussian_log_prob, std_normal_log_prob
from vlae_models.evaluate import mutual_information, mutual_information_bounds


@dataclass
class LinearGaussianConfig:
    latent_dim: int = 2
    data_dim: int = 3


class LinearGaussian(LatentModel):
    """p(z) = N(0, I), p(x|z) = N(Wz + b, s^2 I), q(z|x) = N(Ax + c, diag(d^2)).

    log p(x) = log N(x; b, W W^T + s^2 I) exactly. With ``exact_posterior`` the encoder is the
    true posterior, so every importance weight equals log p(x).
    """

    def __init__(self, exact_posterior: bool = False) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.config = LinearGaussianConfig()
        self.W = torch.randn(3, 2, generator=g)
        self.b = torch.randn(3, generator=g)
        self.s = 0.5
        if exact_posterior:
            # Posterior covariance S = (I + W^T W / s^2)^-1, mean S W^T (x - b) / s^2.
            prec = torch.eye(2) + self.W.t() @ self.W / self.s**2
            cov = torch.linalg.inv(prec)
            self.A = cov @ self.W.t() / self.s**2
            self.c = -self.A @ self.b
            self.L = torch.linalg.cholesky(cov)
        else:
            self.A = 0.3 * torch.randn(2, 3, generator=g)
            self.c = torch.zeros(2)
            self.L = torch.diag(torch.tensor([0.6, 0.9]))
        self.dummy = torch.nn.Parameter(torch.zeros(1))

    def exact_log_px(self, x: Tensor) -> Tensor:
        cov = self.W @ self.W.t() + self.s**2 * torch.eye(3)
        return torch.distributions.MultivariateNormal(self.b, cov).log_prob(x)

    def log_importance_weights(self, x: Tensor, k: int) -> Tensor:
        mean = x @ self.A.t() + self.c  # (B, 2)
        eps = torch.randn(x.shape[0], k, 2)
        z = mean.unsqueeze(1) + eps @ self.L.t()
        # log q(z|x) = -|L^-1 (z - mean)|^2 / 2 - log det L - log 2 pi, and L^-1 (z - mean) = eps.
        log_q = (
            -0.5 * (eps**2).sum(-1)
            - torch.log(torch.diagonal(self.L)).sum()
            - math.log(2 * math.pi)
        )
        log_px_z = gaussian_log_prob(
            x.unsqueeze(1), z @ self.W.t() + self.b, torch.tensor(self.s)
        ).sum(-1)
        return log_px_z + std_normal_log_prob(z).sum(-1) - log_q

    def forward(self, x: Tensor) -> ModelOutput:  # pragma: no cover - not used here
        raise NotImplementedError


def test_iwae_approaches_exact_log_likelihood_from_below():
    torch.manual_seed(0)
    model = LinearGaussian()
    x = torch.randn(4, 3) * 1.5
    exact = model.exact_log_px(x)
    reps = 100
    means = {}
    for k in (1, 10, 100, 1000):
        # reps independent estimates per image in one vectorised call
        est = model.log_likelihood(x.repeat(reps, 1), k, max_rows=1 << 20).view(reps, len(x))
        mean, se = est.mean(0), est.std(0) / reps**0.5
        # A lower bound in expectation: never above the exact value beyond noise.
        assert (mean <= exact + 4 * se + 1e-4).all(), (k, mean, exact)
        means[k] = mean
    gap = {k: (exact - m) for k, m in means.items()}
    assert (gap[1] > gap[10]).all() and (gap[10] > gap[1000]).all()
    assert (gap[1000] < 0.1 * gap[1]).all(), gap
    assert (gap[1000].abs() < 0.05).all(), gap


def test_iwae_chunks_combine_exactly():
    """With the true posterior every weight is log p(x), whatever k and chunking."""
    torch.manual_seed(1)
    model = LinearGaussian(exact_posterior=True)
    x = torch.randn(5, 3)
    exact = model.exact_log_px(x)
    for k, max_rows in ((1, 8192), (1000, 8192), (100, 5 * 7), (37, 5)):
        torch.testing.assert_close(
            model.log_likelihood(x, k, max_rows=max_rows), exact, atol=1e-4, rtol=0
        )


def test_mutual_information_limits():
    torch.manual_seed(2)
    n = 500
    # Identical posteriors carry no information about x.
    same = mutual_information(torch.zeros(n, 3), torch.ones(n, 3))
    assert abs(same) < 1e-9
    # Far-apart, sharp posteriors identify x exactly: I = log N.
    means = torch.arange(n, dtype=torch.float64).unsqueeze(1) * 10.0
    sharp = mutual_information(means, torch.full((n, 1), 0.01, dtype=torch.float64))
    assert abs(sharp - math.log(n)) < 1e-4
    # Means ~ N(0, I), std 0.5: q(z) -> N(0, 1.25 I), so I = 2 * 0.5 * log(1.25 / 0.25) = log 5.
    n = 4000
    mid = mutual_information(torch.randn(n, 2), torch.full((n, 2), 0.5))
    assert abs(mid - math.log(5.0)) < 0.08


def test_mutual_information_bounds_bracket_the_analytic_value():
    """Means ~ N(0, I_d) and std s give I = d/2 log(1 + 1/s^2). Where I < log N both ends
    agree with it; where I > log N the ELBO-surgery end saturates and the leave-one-out end
    stays above I."""
    torch.manual_seed(3)
    n, d, s = 4000, 2, 0.5
    lower, upper = mutual_information_bounds(torch.randn(n, d), torch.full((n, d), s))
    truth = d / 2 * math.log(1 + 1 / s**2)
    assert abs(lower - truth) < 0.05 and abs(upper - truth) < 0.05 and lower <= upper
    n, d, s = 2000, 4, 0.02
    lower, upper = mutual_information_bounds(torch.randn(n, d), torch.full((n, d), s))
    truth = d / 2 * math.log(1 + 1 / s**2)  # 15.6 nats, above log 2000 = 7.6
    assert lower <= math.log(n) + 1e-9 < truth < upper
