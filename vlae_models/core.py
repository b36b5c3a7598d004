"""The model protocol, its output type and the registry.

Every model is an ``nn.Module`` with a small config dataclass. ``forward(x)`` returns a
:class:`ModelOutput` whose ``distortion`` and ``rate`` are per-example tensors in nats, as in
VDVAE; everything else is an extra. The training loss, defined once in
:func:`vlae_models.train.objective`, is ``distortion + beta * rate`` (with the run's free-bits
floor and warm-up), summed over dimensions and averaged over the batch, so beta means the same
thing for every model.

Inputs are float tensors of shape (B, C, H, W): values in {0, 1} for binary data and in
[0, 1] for 8-bit data (k/255). Conversion from uint8 happens in one place, ``to_model_input``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from vlae_models.registry import Registry

# Decoder rows per vectorised IWAE call. Small chunks stay in cache: on a CPU, 256 rows ran
# 3-6x faster than 8192 for every model here (measured side by side on the trained models).
IW_ROWS = 256


class ModelError(Exception):
    """Bad model input, config or checkpoint: the CLI prints it as one line."""


@dataclass
class ModelOutput:
    """Per-example rate and distortion in nats, plus named extras (per-level KL, indices...)."""

    distortion: Tensor  # -log p(x|z), shape (B,)
    rate: Tensor  # KL(q(z|x) || p(z)) or code length, shape (B,)
    extras: dict[str, Tensor] = field(default_factory=dict)


class LatentModel(nn.Module):
    """Base class: subclasses set ``config`` and implement ``forward``, ``reconstruct``, ``sample``.

    ``rate_kind`` labels how ``rate`` is obtained: ``kl`` for a KL bound, ``fixed`` for a
    fixed-length code, ``prior`` for a code length under a learned prior.

    Continuous-latent models also implement ``log_importance_weights`` (one call gives k
    importance weights per example, vectorised over k) and ``posterior_moments``; the base class
    turns the former into the chunked IWAE estimate ``log_likelihood`` (Burda et al. 2016).
    A model may put a per-example ``aux_loss`` in ``extras`` (VQ-VAE's commitment and prior
    terms): it is added to the training loss but is neither rate nor distortion.
    """

    config: Any
    likelihood: Any  # a vlae_models.likelihoods.Likelihood
    rate_kind: ClassVar[str] = "kl"
    has_continuous_latents: ClassVar[bool] = True
    has_latents: ClassVar[bool] = True  # False: forward's distortion is the exact -log p(x)

    @property
    def free_bits_nats(self) -> float:
        """The free-bits floor the training loop uses unless a run sets its own (nats)."""
        return 0.0

    def prepare(self, pixels: Tensor) -> Tensor:
        """uint8 pixels (B, C, H, W) -> model input, checked against the model's likelihood."""
        binary = bool(getattr(self.likelihood, "binary", False))
        if binary and pixels.dtype == torch.uint8 and pixels.numel() and int(pixels.max()) > 1:
            raise ModelError(
                f"likelihood '{self.likelihood.name}' needs binary data (0/1) but these pixels go "
                f"up to {int(pixels.max())}; for 8-bit data use likelihood 'logistic-mixture', "
                "'logistic' or 'gaussian' (CLI: --set likelihood=logistic-mixture), "
                "or binarized data"
            )
        return to_model_input(pixels, binary=binary)

    def reconstruct(self, x: Tensor) -> Tensor:  # pragma: no cover - abstract
        """Decoder mean at the posterior mean (or nearest code), values in [0, 1]."""
        raise NotImplementedError

    def sample(self, n: int, mode: str = "mean") -> Tensor:  # pragma: no cover - abstract
        """n images from the prior: the likelihood's mean (``mode="mean"``) or a draw from it."""
        raise NotImplementedError

    def log_importance_weights(self, x: Tensor, k: int) -> Tensor:
        """log p(x, z_i) - log q(z_i | x) for k posterior samples z_i: shape (B, k), nats.

        A model whose ``iw_posterior`` returns something also takes it as a third argument,
        so that the chunks of one estimate share a single encoder pass."""
        raise ModelError(f"{type(self).__name__} has no importance-weighted likelihood")

    def iw_posterior(self, x: Tensor) -> Any:
        """What every chunk of an IWAE estimate of x can reuse (the encoder's output), or None."""
        return None

    def compile_targets(self) -> list[nn.Module]:
        """The deterministic networks worth ``torch.compile``-ing for likelihood evaluation
        (:func:`compile_networks`); sampling stays eager, so seeded draws are unchanged."""
        return []

    def posterior_moments(self, x: Tensor) -> list[tuple[Tensor, Tensor]]:
        """Per latent level, mean and std of q(z_l | x, ...) flattened to (B, D_l).

        Levels are in generation order (level 0 is sampled first from the prior). Only level 0
        depends on x alone; deeper levels are taken along the posterior-mean path.
        """
        raise ModelError(f"{type(self).__name__} has no continuous posterior")

    def log_likelihood(self, x: Tensor, k: int, max_rows: int = IW_ROWS) -> Tensor:
        """Importance-weighted estimate of log p(x) in nats, shape (B,), with k samples.

        log p(x) >= E[log (1/k) sum_i w_i] (Burda et al. 2016). The k samples are drawn in chunks
        of about ``max_rows / B`` (each chunk one vectorised call) and combined with a running
        log-sum-exp in float64, so k can be in the thousands without holding all weights.
        """
        if k < 1:
            raise ModelError(f"iw_samples must be >= 1, got {k}")
        chunk = max(1, min(k, max_rows // max(1, x.shape[0])))
        posterior = self.iw_posterior(x)
        shared = () if posterior is None else (posterior,)
        total: Tensor | None = None
        done = 0
        while done < k:
            kc = min(chunk, k - done)
            lse = torch.logsumexp(self.log_importance_weights(x, kc, *shared).double(), dim=1)
            total = lse if total is None else torch.logaddexp(total, lse)
            done += kc
        assert total is not None
        return (total - math.log(k)).float()


def compile_networks(model: LatentModel) -> list[str]:
    """``torch.compile`` the model's :meth:`~LatentModel.compile_targets` in place (their
    state-dict keys are kept) and return their class names; a model with none is unchanged.

    Only deterministic networks are compiled: inductor draws its own random numbers, so the
    posterior samples stay eager and seeded evaluations draw the same z. Values then agree with
    the eager model to float tolerance (fused kernels sum in another order), not bit for bit.
    The first call of each input shape pays the compilation (tens of seconds on a CPU).
    """
    names = []
    for module in model.compile_targets():
        module.compile()
        names.append(type(module).__name__)
    return names


@dataclass(frozen=True)
class RegistryEntry:
    name: str
    config_cls: type
    model_cls: type[LatentModel]
    description: str


MODELS: Registry[RegistryEntry] = Registry("model", "vlae_models", ModelError)


def register(name: str, config_cls: type, description: str) -> Callable[[type], type]:
    """Class decorator: make ``name`` build ``model_cls(config_cls(...))``."""

    def wrap(model_cls: type[LatentModel]) -> type[LatentModel]:
        MODELS.add(name)(RegistryEntry(name, config_cls, model_cls, description))
        model_cls.registry_name = name
        return model_cls

    return wrap


def build(name: str, **overrides: Any) -> LatentModel:
    """Build a registered model from its default config with ``overrides`` applied."""
    from vlae_models.config import make_config

    entry = get_entry(name)
    return entry.model_cls(make_config(entry.config_cls, overrides, f"model '{name}' config"))


def get_entry(name: str) -> RegistryEntry:
    return MODELS[name]


def available_models() -> list[RegistryEntry]:
    return [MODELS[name] for name in MODELS]


def to_pixels(values: Tensor, binary: bool) -> Tensor:
    """Model-scale images ([0, 1]) -> uint8 pixels: the inverse of :func:`to_model_input`.

    Binary data round to the nearer of 0 and 1; 8-bit data to the nearest of 0..255.
    """
    values = values.detach().float().clamp(0.0, 1.0)
    return (values.round() if binary else (values * 255.0).round()).to(torch.uint8)


def to_model_input(pixels: Tensor, binary: bool) -> Tensor:
    """uint8 (B, C, H, W) -> float model input: {0,1} for binary data, k/255 otherwise."""
    if pixels.dtype != torch.uint8:
        raise ModelError(f"expected uint8 pixels, got {pixels.dtype}")
    if binary:
        if int(pixels.max()) > 1:
            raise ModelError("binary data must hold only 0 and 1")
        return pixels.float()
    return pixels.float() / 255.0


def as_nchw(pixels: Tensor, what: str = "data") -> Tensor:
    """Check uint8 pixels and give them a channel axis: (N, H, W) -> (N, 1, H, W)."""
    if not isinstance(pixels, Tensor):
        raise ModelError(
            f"{what} must be a torch.Tensor of uint8 pixels, got {type(pixels).__name__}"
        )
    if pixels.dtype != torch.uint8:
        raise ModelError(f"{what} must hold uint8 pixels, got {pixels.dtype}")
    if pixels.dim() == 3:
        pixels = pixels.unsqueeze(1)
    if pixels.dim() != 4 or len(pixels) == 0:
        raise ModelError(
            f"{what} must be (N, C, H, W) or (N, H, W) with N > 0, got {tuple(pixels.shape)}"
        )
    return pixels
