"""Entropy coding of latents with CompressAI's rANS coder (no coder of our own): continuous
latents under Gaussian priors through its ``GaussianConditional``, discrete codes under a
categorical prior through its quantized CDFs (:class:`CategoricalCoder`).

A latent z with prior N(mean, std) is quantized on a grid of step ``step`` centred at the
prior mean, ``y = round((z - mean) / step)``, and y is coded under the discretized Gaussian
N(0, std / step): the code length of y is -log2 of the prior's mass on z's bin. The decoder
rebuilds ``z_hat = mean + step * y``. The standardized scale ``std / step`` is rounded up to
CompressAI's scale table (64 levels from 0.11 to 256), which both sides do identically.

With ``step = sqrt(12) * sigma_q`` (uniform noise of the posterior's variance) the code length
of a Gaussian posterior N(mu, sigma_q) is about its KL plus log(sqrt(2 pi e) / sqrt(12)) =
0.177 nats per dimension, for dimensions with sigma_q small against the prior's std.

Where the steps come from (vector latents, :class:`CalibratedSteps`): a *calibrated* model
holds its own, sqrt(12) times each dimension's median posterior std over training images,
like the CDF tables CompressAI's ``update()`` stores with a model; its streams carry no steps.
An uncalibrated one sends them in every stream, 4 bits per dimension: 16 of the 28 bytes a
32-dimensional β-VAE wrote per MNIST digit (docs/learned.md).
"""

from __future__ import annotations

import functools
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


class CategoricalCoder:
    """Codes integer symbols 0..K-1 under one categorical distribution (K probabilities).

    The CDF is CompressAI's 16-bit quantized one, with one extra bin for its escape code, so
    every symbol costs at least 1/65536 of the range and out-of-range values still code.
    """

    def __init__(self, probs: Tensor) -> None:
        from compressai._CXX import pmf_to_quantized_cdf

        pmf = probs.detach().double().cpu().tolist()
        self.num_symbols = len(pmf)
        self.cdf = pmf_to_quantized_cdf([*pmf, 1e-9], 16)

    def compress(self, symbols: Tensor) -> bytes:
        from compressai.ans import RansEncoder

        values = symbols.flatten().int().tolist()
        return RansEncoder().encode_with_indexes(
            values, [0] * len(values), [self.cdf], [len(self.cdf)], [0]
        )

    def decompress(self, string: bytes, count: int) -> Tensor:
        """``count`` symbols; values outside 0..K-1 (a corrupt stream) raise ValueError."""
        from compressai.ans import RansDecoder

        values = RansDecoder().decode_with_indexes(
            string, [0] * count, [self.cdf], [len(self.cdf)], [0]
        )
        symbols = torch.tensor(values, dtype=torch.long)
        if symbols.numel() and (symbols.min() < 0 or symbols.max() >= self.num_symbols):
            raise ValueError(f"decoded a symbol outside 0..{self.num_symbols - 1}")
        return symbols


@functools.cache
def gaussian_coder() -> GaussianCoder:
    """The one coder per process (its tables are built once)."""
    return GaussianCoder()


def channel_steps(std: Tensor) -> tuple[bytes, Tensor]:
    """Per-channel steps for latent maps (B, C, H, W): sqrt(12) times the mean posterior std of
    each channel, packed (:func:`pack_steps`); the steps come back shaped (C, 1, 1)."""
    data, steps = pack_steps(NOISE_STEP * std.mean((0, 2, 3)))
    return data, steps.view(-1, 1, 1)


def compress_vectors(mean: Tensor, std: Tensor, steps: Tensor | None = None) -> list[bytes]:
    """Code a batch of posterior means (B, D) under N(0, I) into one rANS string, with the
    model's calibrated ``steps`` (D,); without them, with per-dimension steps of sqrt(12)
    times the batch's mean posterior std, sent first as 4-bit codes."""
    zeros = torch.zeros_like(mean)
    if steps is not None:
        string, _ = gaussian_coder().compress(mean, zeros, torch.ones_like(mean), steps)
        return [string]
    step_bytes, step = pack_steps(NOISE_STEP * std.mean(0))
    string, _ = gaussian_coder().compress(mean, zeros, torch.ones_like(mean), step.to(mean.device))
    return [step_bytes, string]


def decompress_vectors(
    strings: list[bytes], shape: list[int], device: torch.device, steps: Tensor | None = None
) -> Tensor:
    """The (B, D) vectors :func:`compress_vectors` coded; a misfit raises ValueError."""
    if len(shape) != 2 or len(strings) != (1 if steps is not None else 2):
        sent = "carries its steps" if len(strings) == 2 else "carries no steps"
        model = "is calibrated" if steps is not None else "is not calibrated"
        raise ValueError(f"{len(strings)} string(s) for a (B, D) latent {shape}: the stream "
                         f"{sent} and the model {model}")  # fmt: skip
    if steps is None:
        steps = unpack_steps(strings[0], shape[1]).to(device)
    zeros = torch.zeros(shape, device=device)
    ones = torch.ones_like(zeros)
    return gaussian_coder().decompress(strings[-1], zeros, ones, steps.expand(shape))


class CalibratedSteps:
    """For a model with (B, D) Gaussian posteriors (``encode(x) -> (mean, std)``): its own
    quantization steps, a buffer ``latent_steps`` saved with its weights (zeros until
    :meth:`calibrate`; checkpoints from before calibration existed load without it)."""

    optional_state = ("latent_steps",)
    latent_steps: Tensor

    def init_steps(self, dim: int) -> None:
        self.register_buffer("latent_steps", torch.zeros(dim))  # type: ignore[attr-defined]

    @property
    def calibrated_steps(self) -> Tensor | None:
        """The calibrated steps (snapped to their grid, which half-precision storage blurs),
        or None for a model that has none."""
        if not bool((self.latent_steps > 0).all()):
            return None
        return pack_steps(self.latent_steps)[1].to(self.latent_steps.device)

    @torch.no_grad()
    def calibrate(self, x: Tensor, batch_size: int = 500) -> None:
        """Set the steps from model inputs ``x`` (training images, never the test split):
        sqrt(12) times each dimension's median posterior std, on the 4-bit grid."""
        encode = self.encode  # type: ignore[attr-defined]
        stds = [encode(x[i : i + batch_size])[1] for i in range(0, len(x), batch_size)]
        _, steps = pack_steps(NOISE_STEP * torch.cat(stds).float().median(0).values)
        self.latent_steps.copy_(steps)
