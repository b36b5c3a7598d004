"""Entropy coding of continuous latents under Gaussian priors, with CompressAI's
``GaussianConditional`` and its rANS coder (no coder of our own).

A latent z with prior N(mean, std) is quantized on a grid of step ``step`` centred at the
prior mean, ``y = round((z - mean) / step)``, and y is coded under the discretized Gaussian
N(0, std / step): the code length of y is -log2 of the prior's mass on z's bin. The decoder
rebuilds ``z_hat = mean + step * y``. The standardized scale ``std / step`` is rounded up to
CompressAI's scale table (64 levels from 0.11 to 256), which both sides do identically.

With ``step = sqrt(12) * sigma_q`` (uniform noise of the posterior's variance) the code length
of a Gaussian posterior N(mu, sigma_q) is about its KL plus log(sqrt(2 pi e) / sqrt(12)) =
0.177 nats per dimension, for dimensions with sigma_q small against the prior's std.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

NOISE_STEP = math.sqrt(12.0)  # step / sigma_q whose uniform noise has the posterior's variance


def pack_steps(steps: Tensor) -> tuple[bytes, Tensor]:
    """Per-dimension quantization steps on a half-octave grid, 2^((k - 12) / 2) for k in 0..15
    (1/64 to 2.83), as 4-bit codes: D/2 bytes of side information. Returns the bytes and the
    steps the decoder will use."""
    codes = (2 * torch.log2(steps.float()) + 12).round().clamp(0, 15).to(torch.uint8).cpu()
    if len(codes) % 2:
        codes = torch.cat([codes, codes.new_zeros(1)])
    packed = (codes[0::2] << 4) | codes[1::2]
    return packed.numpy().tobytes(), unpack_steps(packed.numpy().tobytes(), len(steps))


def unpack_steps(data: bytes, dim: int) -> Tensor:
    if len(data) != (dim + 1) // 2:
        raise ValueError(f"{len(data)} bytes of steps for {dim} dimensions")
    packed = torch.frombuffer(bytearray(data), dtype=torch.uint8)
    codes = torch.stack([packed >> 4, packed & 15], dim=1).reshape(-1)[:dim]
    return torch.pow(2.0, (codes.float() - 12) / 2)


class GaussianCoder:
    """Codes tensors of any shape under elementwise Gaussian priors into one string."""

    def __init__(self) -> None:
        from compressai.entropy_models import GaussianConditional

        scales = torch.exp(torch.linspace(math.log(0.11), math.log(256.0), 64)).tolist()
        self.conditional = GaussianConditional(scales)
        self.conditional.update()

    def symbols(self, z: Tensor, mean: Tensor, step: Tensor) -> Tensor:
        return torch.round((z - mean) / step)

    def compress(self, z: Tensor, mean: Tensor, std: Tensor, step: Tensor) -> tuple[bytes, Tensor]:
        """The string for z, and z_hat, the value the decoder will rebuild."""
        y = self.symbols(z, mean, step)
        indexes = self.conditional.build_indexes((std / step).reshape(1, -1).cpu())
        (string,) = self.conditional.compress(y.reshape(1, -1).cpu(), indexes)
        return string, (mean + step * y)

    def decompress(self, string: bytes, mean: Tensor, std: Tensor, step: Tensor) -> Tensor:
        indexes = self.conditional.build_indexes((std / step).reshape(1, -1).cpu())
        y = self.conditional.decompress([string], indexes).reshape(mean.shape).to(mean.device)
        return mean + step * y

    def bits(self, z: Tensor, mean: Tensor, std: Tensor, step: Tensor) -> float:
        """The ideal code length of ``compress`` under the tabled scales, in bits."""
        y = self.symbols(z, mean, step).detach().reshape(1, -1).cpu()
        indexes = self.conditional.build_indexes((std / step).reshape(1, -1).cpu())
        scales = self.conditional.scale_table[indexes.long()]
        normal = torch.distributions.Normal(0.0, scales.detach())
        mass = normal.cdf(y + 0.5) - normal.cdf(y - 0.5)
        return float(-torch.log2(mass.clamp_min(1e-9)).sum())
