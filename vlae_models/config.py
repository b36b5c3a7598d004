"""One validated config mechanism for models, training, ``--set`` and TOML specs.

Configs are pydantic dataclasses in strict mode with unknown keys refused: they are ordinary
dataclasses (``dataclasses.fields``/``asdict`` work, checkpoints store them as JSON) whose
constructor checks every field's type. Shared model fields live in :class:`ModelConfig`, as
pythae keeps its shared fields in one base. Text from the command line (``--set key=value``)
is parsed by :func:`parse_value` first (true/false, none, int, float, else text), so the same
strict check applies to it and to typed TOML values; an error names the key.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Mapping, Sequence
from typing import Annotated, Any, Literal, TypeVar

from pydantic import ConfigDict, Field, TypeAdapter, ValidationError
from pydantic.dataclasses import dataclass as _pydantic_dataclass

from vlae_models.errors import ModelError

T = TypeVar("T")
STRICT = ConfigDict(strict=True, extra="forbid")


def config_dataclass(cls: type[T]) -> type[T]:
    """Class decorator: a validated (strict, no unknown keys) dataclass."""
    return _pydantic_dataclass(cls, config=STRICT)


@config_dataclass
class ModelConfig:
    """Fields every model config has. Sizes default to 1 x 28 x 28 MNIST."""

    in_channels: int = 1
    image_size: int = 28
    likelihood: str = "bernoulli"  # bernoulli, logistic, logistic-mixture or gaussian
    n_mix: int = 5  # components, for likelihood="logistic-mixture"


Positive = Annotated[float, Field(gt=0, allow_inf_nan=False)]
NonNegative = Annotated[float, Field(ge=0, allow_inf_nan=False)]
Count = Annotated[int, Field(ge=1)]


@config_dataclass
class TrainConfig:
    """Every setting of a training run; stored in each checkpoint. Each field's type and
    range is checked when the config is built, so ``--set``, specs and scripts get the same
    one-line error (``lr``: a finite number > 0, ``beta`` >= 0, ...)."""

    optimizer: Literal["adam", "adamax", "adamw"] = "adamax"
    lr: Positive = 2e-3
    weight_decay: NonNegative = 0.0
    batch_size: Count = 128
    crop: Count | None = None  # random crop side per example and step (natural-image training)
    steps: Count | None = None  # set exactly one of steps / epochs
    epochs: Positive | None = None
    beta: NonNegative = 1.0
    warmup_steps: Annotated[int, Field(ge=0)] = 0  # KL warm-up: beta ramps from 0 over this
    free_bits: NonNegative | None = None  # nats floor on the batch-mean rate; None = model's
    free_bits_mode: Literal["total", "level"] = "total"  # "level": per level of an HVAE
    capacity_gamma: NonNegative = 0.0  # > 0 switches to Burgess et al.'s gamma * |KL - C|
    capacity_max: NonNegative = 25.0  # nats
    capacity_steps: Annotated[int, Field(ge=0)] = 10_000
    grad_clip: Positive | None = None  # max global gradient norm; None = no clipping
    skip_grad_norm: Positive | None = None  # skip updates whose gradient norm is above this
    ema_decay: Annotated[float, Field(ge=0.0, lt=1.0)] = 0.998  # Polyak/EMA weights; 0 = off
    max_consecutive_skips: Annotated[int, Field(ge=0)] = 10
    seed: int = 0
    device: str = "auto"  # "auto", "cpu", "cuda", "cuda:1", ...
    bf16: bool = False  # bfloat16 autocast on CUDA (likelihoods and quantisers stay fp32)
    checkpoint_every: Count = 1000
    log_every: Count = 50
    eval_every: Annotated[int, Field(ge=0)] = 0  # evaluate every N steps (0: only at the end)
    progress: bool = True  # tqdm progress bar


def validate(config: TrainConfig) -> None:
    """What no single field can say: exactly one of steps and epochs is set."""
    if (config.steps is None) == (config.epochs is None):
        raise ModelError("set exactly one of steps and epochs")


def check_value(cls: type, key: str, value: Any) -> str | None:
    """Why field ``key`` of the config dataclass ``cls`` refuses ``value``, or None."""
    try:
        _field_adapter(cls, key).validate_python(value)
    except ValidationError as err:
        return f"{err.errors()[0]['msg']}, got {value!r}"
    return None


@functools.cache
def _field_adapter(cls: type, key: str) -> TypeAdapter:
    info = cls.__pydantic_fields__[key]
    kind = Annotated[info.annotation, *info.metadata] if info.metadata else info.annotation
    return TypeAdapter(kind, config=ConfigDict(strict=True))


def make_config(cls: type[T], values: Mapping[str, Any], where: str) -> T:
    """``cls(**values)``, with a validation failure as one ModelError line naming the key."""
    try:
        return cls(**values)
    except ValidationError as err:
        raise ModelError(f"{where}: {describe(err)}") from None


def describe(err: ValidationError) -> str:
    unknown = [e for e in err.errors() if e["type"] == "unexpected_keyword_argument"]
    other = [e for e in err.errors() if e not in unknown]
    parts = [f"unknown config key '{'.'.join(str(p) for p in e['loc'])}'" for e in unknown]
    return "; ".join(parts + ([describe_errors(other)] if other else []))


def field_defaults(cls: type) -> dict[str, Any]:
    """``{field: default}`` of a config dataclass (``None`` for fields without one)."""
    return {
        f.name: None if f.default is dataclasses.MISSING else f.default
        for f in dataclasses.fields(cls)
    }


def parse_value(text: str) -> Any:
    low = text.strip().lower()
    if low in ("true", "false"):
        return low == "true"
    if low in ("none", "null"):
        return None
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            continue
    return text


def parse_overrides(
    pairs: Sequence[str], model_cls: type, train_cls: type
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Split ``key=value`` pairs into model-config and train-config overrides, each checked
    against its config's field types. ``model.KEY`` / ``train.KEY`` pick a side explicitly."""
    model_fields, train_fields = field_defaults(model_cls), field_defaults(train_cls)
    sides: dict[str, dict[str, Any]] = {"model": {}, "train": {}}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ModelError(f"--set expects key=value, got {pair!r}")
        scope, _, name = key.rpartition(".")
        in_model, in_train = name in model_fields, name in train_fields
        if scope not in ("", "model", "train"):
            raise ModelError(f"--set {key}: prefix must be model. or train.")
        if not scope and in_model and in_train:
            raise ModelError(f"--set {key}: ambiguous, write model.{name} or train.{name}")
        side = scope or ("model" if in_model else "train" if in_train else "")
        if not side or name not in (model_fields if side == "model" else train_fields):
            known = sorted(model_fields) if side == "model" else sorted(train_fields)
            if not side:
                known = sorted({*model_fields, *train_fields})
            raise ModelError(f"--set {key}: unknown {side or 'config'} field; known: {known}")
        sides[side][name] = parse_value(raw)
    for side, cls in (("model", model_cls), ("train", train_cls)):
        try:
            cls(**sides[side])
        except ValidationError as err:
            bad = [e for e in err.errors() if e["loc"] and e["loc"][0] in sides[side]]
            if bad:  # errors of fields not given here (a required field) are not --set's
                raise ModelError(f"--set {describe_errors(bad)}") from None
    return sides["model"], sides["train"]


def describe_errors(errors: list[dict[str, Any]]) -> str:
    return "; ".join(
        f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}, got {e['input']!r}" for e in errors
    )
