"""MADE and the autoregressive-flow (AF) prior of the Variational Lossy Autoencoder.

* :class:`MADE` (Germain et al. 2015, "MADE: Masked Autoencoder for Distribution Estimation"):
  an MLP whose weight masks make output i depend only on inputs that come before i in a chosen
  ordering, so one parallel pass gives every autoregressive conditional.
* :class:`AutoregressiveFlowPrior`: a density on the latent code z built from MADE steps, as in
  Chen et al. 2017 ("Variational Lossy Autoencoder", arXiv:1611.02731; they use 4 steps of
  MADE). One step maps z to noise in the *density* direction,

      eps_i = (z_i - mu_i(z_<i)) * exp(-s_i(z_<i)),      log|det d eps / d z| = -sum_i s_i,

  which is the masked autoregressive flow (MAF, Papamakarios et al. 2017) and the inverse of an
  inverse autoregressive flow (IAF, Kingma et al. 2016). Evaluating log p(z) is one parallel
  MADE pass per step; sampling inverts each step one dimension at a time.

  ``mean_only=True`` (the paper's choice) sets s = 0: every step is volume preserving and its
  log-determinant is exactly 0. ``log_prob`` always adds the log-determinant, so switching to
  ``mean_only=False`` keeps the density correct. (A VLAE's rate is E_q[log q(z|x) - log p(z)];
  dropping the log-determinant from log p(z) would make that rate wrong.)
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

_LOG_2PI = math.log(2.0 * math.pi)


class MaskedLinear(nn.Linear):
    """A Linear layer whose weight is multiplied by a fixed 0/1 mask of shape (out, in)."""

    mask: Tensor

    def __init__(self, mask: Tensor, bias: bool = True) -> None:
        out_features, in_features = mask.shape
        super().__init__(in_features, out_features, bias)
        self.register_buffer("mask", mask.float())

    def forward(self, x: Tensor) -> Tensor:
        return F.linear(x, self.weight * self.mask, self.bias)


def input_degrees(dim: int, order: str | Sequence[int] = "natural") -> Tensor:
    """Degree (1-based position in the ordering) of each input dimension.

    ``order`` is "natural" (0, 1, ..., dim-1), "reversed", or an explicit permutation listing
    the dimensions in the order they are generated.
    """
    if order == "natural":
        sequence = list(range(dim))
    elif order == "reversed":
        sequence = list(range(dim - 1, -1, -1))
    elif isinstance(order, str):
        raise ValueError(f"order must be 'natural', 'reversed' or a permutation, got {order!r}")
    else:
        sequence = [int(i) for i in order]
    if sorted(sequence) != list(range(dim)):
        raise ValueError(f"order {sequence} is not a permutation of range({dim})")
    degrees = torch.empty(dim, dtype=torch.long)
    degrees[sequence] = torch.arange(1, dim + 1)
    return degrees


class MADE(nn.Module):
    """Masked autoencoder: output i is a function of the inputs that precede i in ``order``.

    Hidden units get degrees 1 .. dim-1 in turn (deterministic, not random as in Germain et al.
    2015). A unit of degree d sees inputs of degree <= d, and output i (degree m_i) sees units of
    degree < m_i. The first dimension of the ordering sees nothing: its outputs are biases.

    Args:
        dim: number of variables D.
        hidden: units per hidden layer (>= D - 1 lets every allowed connection exist).
        n_hidden_layers: 0 gives a masked linear map.
        out_per_dim: parameters per variable (for example 2 for a shift and a log-scale).
        order: "natural", "reversed" or a permutation of range(D); see :func:`input_degrees`.

    ``forward(x)`` maps (B, D) to (B, D, out_per_dim).
    """

    def __init__(
        self,
        dim: int,
        hidden: int = 64,
        n_hidden_layers: int = 1,
        out_per_dim: int = 1,
        order: str | Sequence[int] = "natural",
    ) -> None:
        super().__init__()
        self.dim = dim
        self.out_per_dim = out_per_dim
        self.degrees = input_degrees(dim, order)

        # D = 1: degree 0 units see no input, so the single output is a learned constant.
        hidden_degrees = torch.arange(hidden) % max(dim - 1, 1) + min(dim - 1, 1)
        out_degrees = self.degrees.repeat_interleave(out_per_dim)  # output unit i*P + p
        layers: list[nn.Module] = []
        previous = self.degrees
        for _ in range(n_hidden_layers):
            layers += [MaskedLinear(hidden_degrees[:, None] >= previous[None, :]), nn.ELU()]
            previous = hidden_degrees
        layers.append(MaskedLinear(out_degrees[:, None] > previous[None, :]))
        self.net = nn.Sequential(*layers)

    @property
    def output_layer(self) -> MaskedLinear:
        return self.net[-1]

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x).view(x.shape[0], self.dim, self.out_per_dim)


class AutoregressiveFlowStep(nn.Module):
    """One AF step z -> eps, eps_i = (z_i - mu_i(z_<i)) exp(-s_i(z_<i)), with a MADE for (mu, s).

    The log-scale is soft-clamped, s = c tanh(raw / c) with c = ``max_log_scale``: an unbounded
    s that grows with |z| gives extremely heavy tails and overflowing samples. The log-determinant
    is still exactly -sum s. The last MADE layer starts at zero, so a new step is the identity.
    """

    def __init__(
        self,
        dim: int,
        hidden: int,
        n_hidden_layers: int,
        mean_only: bool,
        order: str | Sequence[int] = "natural",
        max_log_scale: float = 3.0,
    ) -> None:
        super().__init__()
        self.dim = dim
        self.mean_only = mean_only
        self.max_log_scale = max_log_scale
        self.made = MADE(dim, hidden, n_hidden_layers, 1 if mean_only else 2, order)
        nn.init.zeros_(self.made.output_layer.weight)
        nn.init.zeros_(self.made.output_layer.bias)

    def shift_and_log_scale(self, z: Tensor) -> tuple[Tensor, Tensor]:
        params = self.made(z)
        if self.mean_only:
            return params[..., 0], torch.zeros_like(z)
        c = self.max_log_scale
        return params[..., 0], c * torch.tanh(params[..., 1] / c)

    def forward(self, z: Tensor) -> tuple[Tensor, Tensor]:
        """z (B, D) -> (eps (B, D), log|det d eps / d z| (B,)), one parallel pass."""
        mu, log_scale = self.shift_and_log_scale(z)
        eps = (z - mu) * torch.exp(-log_scale)
        return eps, -log_scale.sum(-1)

    def inverse(self, eps: Tensor) -> Tensor:
        """eps -> z in D passes: after pass t the first t dimensions of the ordering are exact."""
        z = torch.zeros_like(eps)
        for _ in range(self.dim):
            mu, log_scale = self.shift_and_log_scale(z)
            z = eps * torch.exp(log_scale) + mu
        return z


class AutoregressiveFlowPrior(nn.Module):
    """p(z) = N(f(z); 0, I) |det df/dz|, with f a chain of ``n_steps`` AF steps (Chen et al. 2017).

    Args:
        dim: latent dimensions D.
        n_steps: AF steps; 0 gives the standard normal.
        hidden, n_hidden_layers: size of each step's MADE.
        mean_only: shift-only steps (log-determinant exactly 0), the VLAE paper's choice;
            False adds a scale per dimension (log-determinant -sum s).
        max_log_scale: bound c on |s| per step (affine steps only).
        reverse_between_steps: alternate natural and reversed orderings, so that every
            dimension can depend on every other one after two steps.

    ``log_prob(z)`` returns (B,) nats; ``sample(n)`` returns (n, D).
    """

    _ref: Tensor

    def __init__(
        self,
        dim: int,
        n_steps: int = 4,
        hidden: int = 256,
        n_hidden_layers: int = 2,
        mean_only: bool = True,
        reverse_between_steps: bool = True,
        max_log_scale: float = 3.0,
    ) -> None:
        super().__init__()
        if n_steps < 0:
            raise ValueError(f"n_steps must be >= 0, got {n_steps}")
        self.dim = dim
        self.mean_only = mean_only
        self.steps = nn.ModuleList(
            AutoregressiveFlowStep(
                dim,
                hidden,
                n_hidden_layers,
                mean_only,
                "reversed" if reverse_between_steps and k % 2 else "natural",
                max_log_scale,
            )
            for k in range(n_steps)
        )
        # Carries the device and dtype when there are no steps (and so no parameters).
        self.register_buffer("_ref", torch.zeros(()), persistent=False)

    def forward(self, z: Tensor) -> tuple[Tensor, Tensor]:
        """z (B, D) -> (eps (B, D), total log|det d eps / d z| (B,))."""
        if z.dim() != 2 or z.shape[1] != self.dim:
            raise ValueError(f"expected z of shape (B, {self.dim}), got {tuple(z.shape)}")
        log_det = z.new_zeros(z.shape[0])
        for step in self.steps:
            z, step_log_det = step(z)
            log_det = log_det + step_log_det
        return z, log_det

    def inverse(self, eps: Tensor) -> Tensor:
        """eps (B, D) -> z (B, D); sequential, D MADE passes per step."""
        for step in reversed(self.steps):
            eps = step.inverse(eps)
        return eps

    def log_prob(self, z: Tensor) -> Tensor:
        """log p(z) in nats, shape (B,), log-determinant included."""
        eps, log_det = self(z)
        return -0.5 * (eps.square() + _LOG_2PI).sum(-1) + log_det

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """n samples z = f^{-1}(eps), eps ~ N(0, I), shape (n, D)."""
        eps = torch.randn(
            n, self.dim, generator=generator, device=self._ref.device, dtype=self._ref.dtype
        )
        return self.inverse(eps)
