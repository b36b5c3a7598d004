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

from vlae_models.config import make_config
from vlae_models.errors import ModelError
from vlae_models.registry import PluginError, Registry, import_submodules

# Decoder rows per vectorised IWAE call. Small chunks stay in cache: on a CPU, 256 rows ran
# 3-6x faster than 8192 for every model here (measured side by side on the trained models).
IW_ROWS = 256


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
    config_class: ClassVar[type]  # what ``config`` is; set by ``register_model``
    description: ClassVar[str]
    registry_name: ClassVar[str]
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


def check_output(out: Any, model: LatentModel, batch: int, finite: bool = True) -> ModelOutput:
    """``out`` if it is what ``forward`` must return: a :class:`ModelOutput` whose
    ``distortion`` and ``rate`` are per-example tensors of shape (batch,), finite when
    ``finite``; otherwise one :class:`ModelError` naming the model and where it comes from.
    The training loop checks the shapes at every step and the values at its first; every
    evaluation checks both: a user's model cannot turn into a silently wrong number."""
    name = getattr(model, "registry_name", type(model).__name__)
    where = MODELS.origin(name).label if name in MODELS else "unregistered"
    if not isinstance(out, ModelOutput):
        raise ModelError(f"model '{name}' ({where}): forward returned {type(out).__name__}, "
                         "not a ModelOutput(distortion, rate)")  # fmt: skip
    for field_name in ("distortion", "rate"):
        value = getattr(out, field_name)
        shape = tuple(value.shape) if isinstance(value, Tensor) else type(value).__name__
        if shape != (batch,):
            raise ModelError(
                f"model '{name}' ({where}): forward's {field_name} must be per example, shape "
                f"({batch},), got {shape}"
            )
        if finite and not bool(torch.isfinite(value).all()):
            raise ModelError(f"model '{name}' ({where}): forward's {field_name} is not finite "
                             f"(NaN or inf) for {int((~torch.isfinite(value)).sum())} of "
                             f"{batch} examples")  # fmt: skip
    return out


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


def _adopt(name: str, cls: Any) -> RegistryEntry:
    """A model class as a registry entry: a :class:`LatentModel` with a ``config_class``
    (a config dataclass, :func:`vlae_models.config.config_dataclass`) and the methods the
    training loop and the evaluation call."""
    if not (isinstance(cls, type) and issubclass(cls, LatentModel)):
        raise PluginError(f"model '{name}': {cls!r} is not a subclass of LatentModel")
    config_cls = getattr(cls, "config_class", None)
    if not (isinstance(config_cls, type) and hasattr(config_cls, "__pydantic_fields__")):
        raise PluginError(
            f"model '{name}': {cls.__name__} needs a config_class made with config_dataclass "
            "(its fields, types and defaults, checked like the built-in models')"
        )
    missing = [m for m, base in REQUIRED_METHODS.items() if getattr(cls, m, None) is base]
    if missing:
        raise PluginError(f"model '{name}': {cls.__name__} does not define {', '.join(missing)}")
    description = getattr(cls, "description", None) or (cls.__doc__ or cls.__name__).strip()
    cls.registry_name = name
    return RegistryEntry(name, config_cls, cls, description.splitlines()[0])


REQUIRED_METHODS = {
    "forward": nn.Module.forward,
    "reconstruct": LatentModel.reconstruct,
    "sample": LatentModel.sample,
}
MODELS: Registry[RegistryEntry] = Registry(
    "model", ModelError, builtins=lambda: import_submodules("vlae_models"),
    group="vlae_bench.models", adopt=_adopt, owner=__name__,
)  # fmt: skip


def register_model(
    name: str, config_class: type | None = None, description: str | None = None
) -> Callable[[type], type]:
    """Class decorator: register a :class:`LatentModel` under ``name``, built from
    ``config_class`` (or the class's own ``config_class`` attribute). Outside code uses it
    too (``--plugin``, a script); installed packages use the ``vlae_bench.models`` entry
    point group instead."""

    def wrap(model_cls: type[LatentModel]) -> type[LatentModel]:
        if config_class is not None:
            model_cls.config_class = config_class
        if description is not None:
            model_cls.description = description
        return MODELS.add(name)(model_cls)

    return wrap


def build(name: str, **overrides: Any) -> LatentModel:
    """Build a registered model from its default config with ``overrides`` applied."""
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
