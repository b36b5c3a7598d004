"""MADE and the autoregressive-flow prior: masks, log-determinants, normalisation, sampling."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import stats
from torch import Tensor, nn
from torch.autograd.functional import jacobian

from vlae_models.layers.flows import MADE, AutoregressiveFlowPrior, input_degrees


def randomise(module: nn.Module, std: float, seed: int = 0) -> nn.Module:
    """Random weights everywhere (a new flow is the identity); masks still apply in forward."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=gen, dtype=p.dtype) * std)
    return module


def make_prior(dim: int, n_steps: int, mean_only: bool, std: float = 0.3, **kw) -> nn.Module:
    torch.manual_seed(0)
    prior = AutoregressiveFlowPrior(dim, n_steps, hidden=16, mean_only=mean_only, **kw)
    return randomise(prior.double(), std)


def std_normal_log_prob(z: Tensor) -> Tensor:
    return torch.distributions.Normal(0.0, 1.0).log_prob(z).sum(-1)


# --- MADE ----------------------------------------------------------------------------------


@pytest.mark.parametrize("order", ["natural", "reversed", [2, 0, 4, 1, 3]])
@pytest.mark.parametrize("n_hidden_layers", [0, 1, 2])
@pytest.mark.parametrize("out_per_dim", [1, 2])
def test_made_autoregressive_property(order, n_hidden_layers: int, out_per_dim: int) -> None:
    dim = 5
    made = randomise(MADE(dim, 12, n_hidden_layers, out_per_dim, order).double(), 0.5)
    x = torch.randn(dim, dtype=torch.float64)
    jac = jacobian(lambda v: made(v[None])[0], x)  # (D, P, D)
    degree = input_degrees(dim, order)
    allowed = degree[None, :] < degree[:, None]  # output i may read input j
    nonzero = jac.ne(0).any(1)
    # Exactly the allowed connections exist: no leak, and every permitted one is used.
    assert torch.equal(nonzero, allowed)


def test_made_degrees_and_bad_orders() -> None:
    assert input_degrees(4).tolist() == [1, 2, 3, 4]
    assert input_degrees(4, "reversed").tolist() == [4, 3, 2, 1]
    assert input_degrees(3, [1, 2, 0]).tolist() == [3, 1, 2]
    with pytest.raises(ValueError, match="permutation"):
        input_degrees(3, [0, 0, 1])
    with pytest.raises(ValueError, match="order"):
        input_degrees(3, "random")


def test_made_one_dimension_is_a_constant() -> None:
    made = randomise(MADE(1, 8, 2, 2).double(), 0.5)
    out = made(torch.randn(6, 1, dtype=torch.float64))
    assert out.shape == (6, 1, 2)
    assert torch.equal(out, out[:1].expand_as(out))


# --- flow steps and the log-determinant ----------------------------------------------------


@pytest.mark.parametrize("mean_only", [True, False])
def test_each_step_is_triangular_with_the_stated_diagonal(mean_only: bool) -> None:
    dim = 4
    prior = make_prior(dim, 2, mean_only)
    z = torch.randn(dim, dtype=torch.float64)
    for step in prior.steps:
        jac = jacobian(lambda v, step=step: step(v[None])[0][0], z)
        degree = step.made.degrees
        later = degree[None, :] > degree[:, None]  # eps_i must ignore z_j later in the order
        assert jac[later].eq(0).all()
        _, log_scale = step.shift_and_log_scale(z[None])
        torch.testing.assert_close(jac.diagonal(), torch.exp(-log_scale[0]))
        z = step(z[None])[0][0]


@pytest.mark.parametrize("mean_only", [True, False])
def test_log_det_matches_slogdet_of_the_numeric_jacobian(mean_only: bool) -> None:
    dim = 5
    prior = make_prior(dim, 3, mean_only)
    z = torch.randn(4, dim, dtype=torch.float64)
    _, log_det = prior(z)
    for b in range(len(z)):
        jac = jacobian(lambda v: prior(v[None])[0][0], z[b])
        sign, numeric = torch.linalg.slogdet(jac)
        assert sign > 0  # each step has a positive diagonal
        torch.testing.assert_close(log_det[b], numeric)
        # The composed Jacobian is not triangular: reversed orderings mix all dimensions.
        assert jac.triu(1).ne(0).any() and jac.tril(-1).ne(0).any()
    if mean_only:
        assert log_det.eq(0).all()
    else:
        assert log_det.abs().min() > 1e-3


def test_log_prob_includes_the_log_det() -> None:
    prior = make_prior(3, 2, mean_only=False)
    z = torch.randn(7, 3, dtype=torch.float64)
    eps, log_det = prior(z)
    torch.testing.assert_close(prior.log_prob(z), std_normal_log_prob(eps) + log_det)


# --- normalisation -------------------------------------------------------------------------


@pytest.mark.parametrize("mean_only", [True, False])
def test_density_integrates_to_one_in_1d(mean_only: bool) -> None:
    prior = make_prior(1, 3, mean_only, std=0.5)
    grid = torch.linspace(-30, 30, 60001, dtype=torch.float64)[:, None]
    with torch.no_grad():
        density = prior.log_prob(grid).exp()
    assert torch.trapezoid(density, grid[:, 0]).item() == pytest.approx(1.0, abs=1e-6)


@pytest.mark.parametrize("mean_only", [True, False])
def test_density_integrates_to_one_in_2d(mean_only: bool) -> None:
    prior = make_prior(2, 4, mean_only, std=0.2)  # larger weights give tails beyond the grid
    axis = torch.linspace(-12, 12, 481, dtype=torch.float64)
    z = torch.cartesian_prod(axis, axis)
    with torch.no_grad():
        density = prior.log_prob(z).exp().view(len(axis), len(axis))
    mass = torch.trapezoid(torch.trapezoid(density, axis, dim=1), axis).item()
    assert mass == pytest.approx(1.0, abs=1e-5)
    # ... and it is not just a standard normal in disguise.
    assert not torch.allclose(prior.log_prob(z[:100]), std_normal_log_prob(z[:100]))


# --- sampling ------------------------------------------------------------------------------


@pytest.mark.parametrize("mean_only", [True, False])
def test_inverse_undoes_forward(mean_only: bool) -> None:
    prior = make_prior(6, 4, mean_only)
    z = torch.randn(32, 6, dtype=torch.float64)
    eps, _ = prior(z)
    torch.testing.assert_close(prior.inverse(eps), z, rtol=0, atol=1e-10)
    torch.testing.assert_close(prior(prior.inverse(z))[0], z, rtol=0, atol=1e-10)


def test_samples_match_the_density_1d_ks() -> None:
    """KS test of samples against the CDF obtained by integrating exp(log_prob)."""
    prior = make_prior(1, 3, mean_only=False, std=0.5)
    grid = torch.linspace(-30, 30, 60001, dtype=torch.float64)
    with torch.no_grad():
        density = prior.log_prob(grid[:, None]).exp()
    cdf = torch.cat(
        [torch.zeros(1, dtype=torch.float64), torch.cumulative_trapezoid(density, grid)]
    )
    samples = prior.sample(5000, generator=torch.Generator().manual_seed(3))[:, 0]
    assert samples.std() > 1.5  # the flow is far from N(0, 1), so the test has teeth

    def flow_cdf(v: np.ndarray) -> np.ndarray:
        return np.interp(v, grid.numpy(), cdf.numpy())

    assert stats.kstest(samples.numpy(), flow_cdf).pvalue > 1e-3
    assert stats.kstest(samples.numpy(), "norm").pvalue < 1e-6


@pytest.mark.parametrize("mean_only", [True, False])
def test_samples_match_the_density_2d_moments(mean_only: bool) -> None:
    """Sample moments agree with moments integrated from the density on a grid."""
    prior = make_prior(2, 4, mean_only, std=0.2)  # larger weights give tails beyond the grid
    axis = torch.linspace(-12, 12, 481, dtype=torch.float64)
    z = torch.cartesian_prod(axis, axis)
    with torch.no_grad():
        weight = prior.log_prob(z).exp()
    weight = weight / weight.sum()
    samples = prior.sample(20000, generator=torch.Generator().manual_seed(4))

    def moments(v: Tensor) -> Tensor:
        return torch.stack([v[:, 0], v[:, 1], v[:, 0] ** 2, v[:, 1] ** 2, v[:, 0] * v[:, 1]], 1)

    integrated = (moments(z) * weight[:, None]).sum(0)
    sampled = moments(samples).mean(0)
    stderr = moments(samples).std(0) / math.sqrt(len(samples))
    assert ((sampled - integrated).abs() < 5 * stderr).all(), (sampled, integrated, stderr)
    # Also E_p[-log p] from samples equals the integrated entropy.
    with torch.no_grad():
        entropy_mc = -prior.log_prob(samples).mean()
        entropy_grid = -(weight * prior.log_prob(z)).sum()
    assert entropy_mc.item() == pytest.approx(entropy_grid.item(), abs=0.05)


# --- special cases -------------------------------------------------------------------------


def test_zero_steps_is_exactly_the_standard_normal() -> None:
    prior = AutoregressiveFlowPrior(5, n_steps=0)
    assert len(list(prior.parameters())) == 0
    z = torch.randn(10, 5)
    assert torch.equal(prior.log_prob(z), -0.5 * (z.square() + math.log(2 * math.pi)).sum(-1))
    torch.testing.assert_close(prior.log_prob(z), std_normal_log_prob(z))
    sample = prior.sample(3, generator=torch.Generator().manual_seed(0))
    assert torch.equal(sample, torch.randn(3, 5, generator=torch.Generator().manual_seed(0)))
    assert prior.double().sample(2).dtype == torch.float64


@pytest.mark.parametrize("mean_only", [True, False])
def test_new_prior_is_the_standard_normal_and_trains(mean_only: bool) -> None:
    torch.manual_seed(0)
    prior = AutoregressiveFlowPrior(8, n_steps=4, hidden=32, mean_only=mean_only)
    z = torch.randn(16, 8) * 2 + 1
    torch.testing.assert_close(prior.log_prob(z), std_normal_log_prob(z))
    opt = torch.optim.Adam(prior.parameters(), lr=1e-2)
    before = -prior.log_prob(z).mean().item()
    for _ in range(20):
        opt.zero_grad()
        loss = -prior.log_prob(z).mean()
        loss.backward()
        opt.step()
    assert loss.item() < before - 1.0


def test_bad_shapes() -> None:
    prior = AutoregressiveFlowPrior(3, n_steps=1, hidden=8)
    with pytest.raises(ValueError, match=r"\(B, 3\)"):
        prior.log_prob(torch.zeros(2, 4))
    with pytest.raises(ValueError, match="n_steps"):
        AutoregressiveFlowPrior(3, n_steps=-1)
