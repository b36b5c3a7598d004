"""A VQ-VAE's index map under a PixelCNN prior (van den Oord et al. 2017, section 3.2).

The VQ-VAE (:mod:`vlae_models.vqvae`) is trained first; this model keeps it frozen and
learns a second stage: an autoregressive prior over its grid of code indices,

    p(k) = prod_i p(k_i | k_<i),   i in raster order over the h x w grid,

a :class:`~vlae_models.layers.masked.LocalPixelCNN` fed the one-hot index map (K input
channels, "joint" order, one output per channel: the K logits of the next index). The
default window (6 layers of 3 x 3: reach 6) covers every earlier position of MNIST's 7 x 7
grid, so nothing is left out of the conditioning.

Rates (``rate_kind``), as for the VQ-VAE:

``prior``
    -log p(k) under the PixelCNN prior: the code length of the indices, and what training
    minimises (the VQ-VAE's distortion has no gradient here; the encoder, codebook and
    decoder never change).
``fixed``
    log K nats per position.

The factorised prior's rate is the VQ-VAE's own row; the two models share indices and
distortion, so their rows differ by the prior alone.

Real bits: ``compress`` codes the indices one position after another with constriction's
rANS coder under the prior's categorical at that position. The encoder computes all
positions' logits in one pass and the decoder one position at a time, both with the
arithmetic of :mod:`vlae_models.layers.pixel_steps` (bit-identical logits), and the
probabilities go through one exp table (:func:`index_probs`), so the two sides give the
coder the same numbers.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vlae_models import checkpoint, zoo
from vlae_models.config import ModelConfig, config_dataclass
from vlae_models.core import LatentModel, ModelError, ModelOutput, register_model
from vlae_models.layers.masked import LocalPixelCNN
from vlae_models.layers.pixel_steps import PixelSteps, pixelcnn_params, sample_autoregressive
from vlae_models.vqvae import VQVAE

LOGIT_RANGE = 40  # nats below the largest logit; further down a code gets the coder's floor
LOGIT_SCALE = 256  # logits are rounded to 1/256 before the table: < 1e-5 nats an index
_EXP = np.exp(-np.arange(LOGIT_RANGE * LOGIT_SCALE + 1) / LOGIT_SCALE)


@config_dataclass
class VQVAEARConfig(ModelConfig):
    """The frozen VQ-VAE (a checkpoint path or ``zoo:NAME``) and the prior's sizes. The
    shared fields (``in_channels``, ``image_size``, ``likelihood``, ``n_mix``) must equal
    the VQ-VAE's."""

    vqvae: str = "zoo:vq-vae-binarized-mnist"
    prior_layers: int = 6
    prior_filters: int = 64
    prior_kernel: int = 3
    prior_res_blocks: int = 2


def index_probs(logits: Tensor) -> np.ndarray:
    """Unnormalised probabilities (N, K), float64, of logits (N, K) through one exp table:
    the same logits give the same floats whatever the batch (a vectorised exp may round the
    same input differently); constriction normalises them."""
    shifted = logits.detach().double() - logits.detach().double().amax(-1, keepdim=True)
    index = torch.round(shifted.clamp_min(-LOGIT_RANGE) * -LOGIT_SCALE).long()
    # C order: constriction reads the buffer as such (a permuted view was read scrambled)
    return np.ascontiguousarray(_EXP[index.cpu().numpy()])


def _ans():
    import constriction

    return constriction.stream


@register_model(
    "vq-vae-ar", VQVAEARConfig, "VQ-VAE with a PixelCNN prior over its frozen index map"
)
class VQVAEAR(LatentModel):
    """A frozen VQ-VAE and a PixelCNN prior over its indices (see the module docstring)."""

    has_continuous_latents = False
    rate_kind = "prior"

    def __init__(self, config: VQVAEARConfig) -> None:
        super().__init__()
        self.config = config
        vq, _ = checkpoint.load(zoo.resolve(config.vqvae))
        if not isinstance(vq, VQVAE):
            raise ModelError(f"vqvae {config.vqvae} holds a '{vq.registry_name}', not a 'vq-vae'")
        shared = ("in_channels", "image_size", "likelihood", "n_mix")
        differ = [f"{k} {getattr(config, k)!r} (VQ-VAE: {getattr(vq.config, k)!r})"
                  for k in shared if getattr(config, k) != getattr(vq.config, k)]  # fmt: skip
        if differ:
            raise ModelError(f"vq-vae-ar config differs from its VQ-VAE's: {', '.join(differ)}")
        self.vqvae = vq.requires_grad_(False).eval()
        self.likelihood = vq.likelihood
        self.num_codes = vq.config.num_codes
        self.prior = LocalPixelCNN(
            in_channels=self.num_codes, n_layers=config.prior_layers,
            filters=config.prior_filters, kernel_size=config.prior_kernel,
            n_out_params=1, n_res_blocks=config.prior_res_blocks, channel_order="joint",
        )  # fmt: skip

    def train(self, mode: bool = True) -> VQVAEAR:
        """The VQ-VAE stays in eval mode: its codebook's EMA must not move."""
        super().train(mode)
        self.vqvae.eval()
        return self

    @property
    def grid(self) -> tuple[int, int]:
        return self.vqvae.grid

    @property
    def positions(self) -> int:
        return self.vqvae.positions

    def one_hot(self, idx: Tensor) -> Tensor:
        """Indices (B, h, w) -> the prior's input (B, K, h, w)."""
        return F.one_hot(idx, self.num_codes).permute(0, 3, 1, 2).float()

    def index_logits(self, idx: Tensor) -> Tensor:
        """Logits (B, K, h, w) of each index given the indices before it (one pass)."""
        return self.prior(self.one_hot(idx))[:, :, 0]

    def code_length(self, idx: Tensor) -> Tensor:
        """-log p(indices) in nats per example under the PixelCNN prior."""
        return F.cross_entropy(self.index_logits(idx), idx, reduction="none").flatten(1).sum(1)

    def decode_indices(self, idx: Tensor) -> Tensor:
        """The VQ-VAE decoder's likelihood parameters for an index map."""
        return self.vqvae.decoder(self.vqvae.quantizer.lookup(idx))

    def forward(self, x: Tensor) -> ModelOutput:
        with torch.no_grad():
            idx = self.vqvae.code_indices(x)
            distortion = -self.likelihood.log_prob(self.decode_indices(idx), x)
        rate = self.code_length(idx)
        fixed = torch.full_like(distortion, self.positions * math.log(self.num_codes))
        extras = {"indices": idx, "rate_fixed": fixed, "rate_prior": rate.detach()}
        return ModelOutput(distortion=distortion, rate=rate, extras=extras)

    @torch.no_grad()
    def reconstruct(self, x: Tensor) -> Tensor:
        return self.vqvae.reconstruct(x)

    @torch.no_grad()
    def sample_indices(self, n: int) -> Tensor:
        """n index maps (n, h, w) drawn position by position from the prior."""

        def draw(params: Tensor) -> tuple[Tensor, Tensor]:
            logits = params[:, :, 0]
            idx = torch.multinomial(torch.softmax(logits.float(), -1), 1)[:, 0]
            log_p = torch.log_softmax(logits.float(), -1).gather(1, idx[:, None])[:, 0]
            return self.one_hot(idx[:, None, None])[:, :, 0, 0], log_p

        shape = (n, self.num_codes, *self.grid)
        one_hot, _ = sample_autoregressive(self.prior, None, shape, draw)
        return one_hot.argmax(1)

    @torch.no_grad()
    def sample(self, n: int, mode: str = "mean") -> Tensor:
        """Index maps drawn from the PixelCNN prior, then decoded by the VQ-VAE."""
        params = self.decode_indices(self.sample_indices(n))
        return self.likelihood.mean(params) if mode == "mean" else self.likelihood.sample(params)

    def _check_cpu(self) -> None:
        if next(self.prior.parameters()).device.type != "cpu":  # pixel_steps' equality is the CPU's
            raise ModelError("the vq-vae-ar codec runs on the CPU (--device cpu): a CUDA cumsum "
                             "sums in an order that depends on the shape")  # fmt: skip

    @torch.no_grad()
    def compress(self, x: Tensor) -> dict[str, Any]:
        """The indices, rANS-coded position by position under the prior (one string)."""
        self._check_cpu()
        idx = self.vqvae.code_indices(x)
        b = len(idx)
        logits = pixelcnn_params(self.prior, self.one_hot(idx))[:, :, 0]  # (B, K, h, w)
        rows = logits.permute(2, 3, 0, 1).reshape(-1, self.num_codes)  # position-major
        symbols = idx.permute(1, 2, 0).reshape(-1).cpu().numpy().astype(np.int32)
        coder = _ans().stack.AnsCoder()
        coder.encode_reverse(symbols, _ans().model.Categorical(perfect=False), index_probs(rows))
        words = coder.get_compressed().astype("<u4").tobytes()
        return {"strings": [words], "shape": [b, self.positions]}

    @torch.no_grad()
    def decompress(self, strings: list[bytes], shape: list[int]) -> dict[str, Tensor]:
        """The indices decoded position by position (the prior run a step at a time, its
        activations cached), then the VQ-VAE decoder's likelihood mean."""
        self._check_cpu()
        if (len(strings) != 1 or shape[1:] != [self.positions] or not strings[0]
                or len(strings[0]) % 4):  # fmt: skip
            raise ModelError(f"vq-vae-ar stream does not fit: {len(strings)} strings, "
                             f"shape {shape}")  # fmt: skip
        b, (h, w) = shape[0], self.grid
        words = np.frombuffer(strings[0], dtype="<u4").astype(np.uint32)
        try:
            idx = self._decode_indices(_ans().stack.AnsCoder(words), b, h, w)
        except (ValueError, RuntimeError, OverflowError) as err:  # constriction's refusals
            raise ModelError(f"vq-vae-ar stream is corrupt: {err}") from None
        return {"x_hat": self.likelihood.mean(self.decode_indices(idx))}

    def _decode_indices(self, coder, b: int, h: int, w: int) -> Tensor:
        device = next(self.prior.parameters()).device
        steps = PixelSteps(self.prior, None, (b, self.num_codes, h, w))
        family = _ans().model.Categorical(perfect=False)
        idx = torch.zeros(b, h, w, dtype=torch.long, device=device)
        for row in range(h):
            steps.start_row(row)
            for col in range(w):
                probs = index_probs(steps.pixel(row, col)[:, :, 0])
                codes = torch.from_numpy(coder.decode(family, probs).astype(np.int64))
                idx[:, row, col] = codes.to(device)
                steps.write(row, col, slice(0, self.num_codes), self.one_hot(codes[:, None, None])
                            [:, :, 0, 0])  # fmt: skip
        if not coder.is_empty():
            raise ValueError("bits are left over after the last index")
        return idx

    def compile_targets(self) -> list[nn.Module]:
        return [self.prior]
