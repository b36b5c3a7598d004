"""Diagonal-Gaussian helpers shared by the continuous-latent models.

All functions work elementwise and in float32 (they upcast bf16/fp16 inputs), so a model
running under autocast still computes its KL terms and log-densities in full precision.
Reductions (sum over latent dimensions) are left to the caller.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from vlae_models.distributed import standard_normal_like

LOG_2PI = math.log(2.0 * math.pi)
MIN_STD = 1e-4
_SOFTPLUS_INV_ONE = math.log(math.e - 1.0)  # softplus(_SOFTPLUS_INV_ONE) == 1


def split_gaussian(params: Tensor, dim: int = 1, min_std: float = MIN_STD) -> tuple[Tensor, Tensor]:
    """Split a network output into (mean, std) halves along ``dim``.

    The standard deviation is ``softplus(raw + c) + min_std`` with c chosen so that raw = 0
    gives std = 1: positive, smooth, bounded away from zero, and free of the overflow that
    plain ``exp(log_std)`` allows. A zero-initialised head therefore starts at N(0, 1).
    """
    mean, raw = params.float().chunk(2, dim=dim)
    return mean, F.softplus(raw + _SOFTPLUS_INV_ONE) + min_std


def gaussian_log_prob(z: Tensor, mean: Tensor, std: Tensor) -> Tensor:
    """Elementwise log N(z; mean, std^2) in nats."""
    z, mean, std = z.float(), mean.float(), std.float()
    return -0.5 * (((z - mean) / std) ** 2 + LOG_2PI) - torch.log(std)


def std_normal_log_prob(z: Tensor) -> Tensor:
    """Elementwise log N(z; 0, 1) in nats."""
    z = z.float()
    return -0.5 * (z**2 + LOG_2PI)


def kl_diag_gaussians(mean_q: Tensor, std_q: Tensor, mean_p: Tensor, std_p: Tensor) -> Tensor:
    """Elementwise analytic KL(N(mean_q, std_q^2) || N(mean_p, std_p^2)) in nats."""
    mean_q, std_q, mean_p, std_p = (t.float() for t in (mean_q, std_q, mean_p, std_p))
    var_ratio = (std_q / std_p) ** 2
    mean_term = ((mean_q - mean_p) / std_p) ** 2
    return 0.5 * (var_ratio + mean_term - 1.0 - torch.log(var_ratio))


def kl_std_normal(mean: Tensor, std: Tensor) -> Tensor:
    """Elementwise analytic KL(N(mean, std^2) || N(0, 1)) in nats (Kingma & Welling 2014, B)."""
    mean, std = mean.float(), std.float()
    return 0.5 * (mean**2 + std**2 - 1.0) - torch.log(std)


def rsample(mean: Tensor, std: Tensor) -> Tensor:
    """Reparameterised sample mean + std * eps (Kingma & Welling 2014). In a data-parallel
    step eps is this rank's rows of the global batch's noise (:mod:`vlae_models.distributed`)."""
    return mean + std * standard_normal_like(std)
