"""CompressAI's learned codecs as trainable models of the suite, for the one training loop.

Architectures (registered under CompressAI's own names): ``bmshj2018-factorized`` and
``bmshj2018-hyperprior`` (Ballé et al. 2018, "Variational image compression with a scale
hyperprior"), ``mbt2018-mean`` and ``mbt2018`` (Minnen et al. 2018, "Joint autoregressive and
hierarchical priors"), ``cheng2020-anchor`` (Cheng et al. 2020). The network is CompressAI's
class itself (``self.net``), so its weights export to CompressAI's layout unchanged
(:func:`export_compressai`) and load in ``compressai.utils.eval_model``.

The loss is CompressAI's rate–distortion loss ``λ·255²·MSE + bpp``, written in the suite's
units (nats per image, summed over dimensions) so that ``vlae_models.train.objective`` is the
one loss here too: ``rate`` is the forward pass's code-length estimate −Σ ln p(ŷ, ẑ) (uniform
noise in training), ``distortion`` is ``λ·255²·MSE·H·W·ln 2``. The sum is CompressAI's loss
times the constant ``H·W·ln 2``, which Adam's updates do not see (only ``grad_clip`` and
``skip_grad_norm`` are in these units). Equivalently the distortion is a Gaussian NLL, up to a
constant, with σ² = 3 / (2·λ·255²·ln 2). ``extras["aux_loss"]`` is the entropy bottleneck's
quantile loss, trained by the same optimizer (only the quantiles receive its gradient; they
receive no other). Train with β = 1: λ is the trade-off.

compressai is imported when a model is built, not when the registry lists models.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from vlae_models.checkpoint import load
from vlae_models.config import ModelConfig, config_dataclass
from vlae_models.core import LatentModel, ModelError, ModelOutput, register_model
from vlae_models.files import atomic_write
from vlae_models.units import LN2

# Architecture -> (CompressAI's default N, M), the sizes of its quality 1-5 models.
SIZES = {
    "bmshj2018-factorized": (128, 192),
    "bmshj2018-hyperprior": (128, 192),
    "mbt2018-mean": (128, 192),
    "mbt2018": (192, 192),
    "cheng2020-anchor": (128, None),  # cheng2020 has one width
}


class MSE:
    """The distortion's stand-in for a likelihood: inputs are 8-bit images in [0, 1]."""

    name = "mse"
    binary = False


@config_dataclass
class CompressAIConfig(ModelConfig):
    """A CompressAI network and its λ. ``image_size`` is the training crop's side."""

    in_channels: int = 3
    image_size: int = 128
    likelihood: str = "mse"
    N: int = 0  # 0: the architecture's default (SIZES)
    M: int = 0
    lmbda: float = 0.01  # CompressAI's λ for λ·255²·MSE + bpp


class CompressAINet(LatentModel):
    """One CompressAI architecture (``architecture``, set by each registered subclass)."""

    architecture: str
    rate_kind = "estimate"
    has_continuous_latents = False
    is_compressai = True  # a codec of its own (baselines.learned), not a model method

    def __init__(self, config: CompressAIConfig) -> None:
        super().__init__()
        from compressai.zoo.image import model_architectures

        if config.in_channels != 3 or config.likelihood != "mse":
            raise ModelError(
                f"{self.architecture} codes RGB images with the MSE loss: in_channels must be 3 "
                f"and likelihood 'mse' (got {config.in_channels}, '{config.likelihood}')"
            )
        if config.image_size % 64 or config.lmbda <= 0:
            raise ModelError(
                f"{self.architecture}: image_size must be a multiple of 64 and lmbda > 0 "
                f"(got {config.image_size}, {config.lmbda})"
            )
        self.config = config
        self.likelihood = MSE()
        default_n, default_m = SIZES[self.architecture]
        sizes = {"N": config.N or default_n}
        if default_m is not None:
            sizes["M"] = config.M or default_m
        elif config.M:
            raise ModelError(f"{self.architecture} has one width, N; M must stay 0")
        self.net = model_architectures[self.architecture](**sizes)

    def forward(self, x: Tensor) -> ModelOutput:
        out = self.net(x)
        rate = sum(-torch.log(p).flatten(1).sum(1) for p in out["likelihoods"].values())
        mse = (out["x_hat"] - x).pow(2).flatten(1).mean(1)
        h, w = x.shape[-2:]
        distortion = self.config.lmbda * 255**2 * mse * (h * w * LN2)
        aux = self.net.aux_loss().expand(x.shape[0])
        return ModelOutput(distortion, rate, {"aux_loss": aux, "mse": mse.detach()})

    @torch.no_grad()
    def reconstruct(self, x: Tensor) -> Tensor:
        return self.net(x)["x_hat"].clamp(0, 1)

    def sample(self, n: int, mode: str = "mean") -> Tensor:
        raise ModelError(f"{self.architecture} is a codec: it has no prior to sample from")


def _register(architecture: str) -> None:
    cls = type(
        "CompressAI_" + architecture.replace("-", "_"),
        (CompressAINet,),
        {"architecture": architecture, "__doc__": f"CompressAI's {architecture}."},
    )
    register_model(architecture, CompressAIConfig, f"CompressAI {architecture}, λ·255²·MSE + bpp")(
        cls
    )


for _architecture in SIZES:
    _register(_architecture)


def is_compressai(model: LatentModel) -> bool:
    return getattr(model, "is_compressai", False)


def export_compressai(checkpoint_path: Path | str, out: Path | str, weights: str = "ema") -> Path:
    """Write a trained checkpoint's network in CompressAI's layout, ``{"state_dict": ...}``,
    loadable by ``compressai.utils.eval_model checkpoint -a ARCH -p OUT``."""

    model, _ = load(checkpoint_path, device="cpu", weights=weights)
    if not is_compressai(model):
        raise ModelError(f"{checkpoint_path} holds a '{model.registry_name}', not a CompressAI net")
    out = Path(out)
    state = {k: v.contiguous() for k, v in model.net.state_dict().items()}
    atomic_write(out, lambda path: torch.save({"state_dict": state}, path))
    return out


def network(checkpoint_path: Path | str, device: str = "cpu") -> tuple[Any, dict[str, Any]]:
    """The CompressAI network of a checkpoint written by the training loop (EMA weights), and
    the checkpoint's metadata."""

    model, meta = load(checkpoint_path, device=device, weights="ema")
    if not is_compressai(model):
        raise ModelError(f"{checkpoint_path} holds a '{model.registry_name}', not a CompressAI net")
    return model.net, meta
