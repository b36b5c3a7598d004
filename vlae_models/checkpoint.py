"""Checkpoints: one safetensors file holding weights, EMA weights, optimizer and RNG state.

Format (``format_version`` 1): a plain safetensors file, so loading it never runs code. The
tensors are namespaced ``model/<key>`` (raw weights), ``ema/<key>`` (Polyak/EMA weights, if
any), ``optim/<param index>/<key>`` (optimizer state) and ``rng/cpu``, ``rng/cuda`` (RNG
states). The header's ``__metadata__["vlae_bench"]`` is a JSON document with the registry
name, the model config, the training config, the step, counters, optimizer hyper-parameters,
package versions and a SHA-256 of the tensor bytes, which catches corruption that safetensors'
own header checks cannot see.

Files are written atomically (temporary file in the same folder, fsync, ``os.replace``), so
an interrupted save leaves the previous checkpoint intact. Every problem on load (missing,
truncated, corrupt, foreign or wrong-architecture file) raises one-line :class:`ModelError`
naming the file and what is wrong.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save
from torch import Tensor, nn

from vlae_models.core import LatentModel, ModelError, get_entry
from vlae_models.files import atomic_write, versions

FORMAT = "vlae-bench-checkpoint"
FORMAT_VERSION = 1
META_KEY = "vlae_bench"


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def _fail(path: Path, what: str) -> ModelError:
    return ModelError(_one_line(f"checkpoint {path}: {what}"))


def _cpu(t: Tensor) -> Tensor:
    # clone: safetensors refuses tensors that share storage (views, tied weights)
    return t.detach().to("cpu").contiguous().clone()


def _serialize(tensors: dict[str, Tensor], meta: dict[str, Any]) -> bytes:
    """safetensors bytes whose metadata carries the SHA-256 of the tensor data section."""
    meta = dict(meta, data_sha256="")
    blob = st_save(tensors, metadata={META_KEY: json.dumps(meta, sort_keys=True)})
    # The data section does not depend on the metadata, so hash it, then write the final header.
    meta["data_sha256"] = hashlib.sha256(_data_section(blob)).hexdigest()
    return st_save(tensors, metadata={META_KEY: json.dumps(meta, sort_keys=True)})


def _data_section(blob: bytes) -> bytes:
    return blob[8 + int.from_bytes(blob[:8], "little") :]


def save(
    path: Path | str,
    model: LatentModel,
    *,
    train_config: Any = None,
    step: int = 0,
    optimizer: torch.optim.Optimizer | None = None,
    ema_state: dict[str, Tensor] | None = None,
    save_rng: bool = False,
    extra: dict[str, Any] | None = None,
) -> Path:
    """Write a checkpoint of ``model`` (and optionally its training state) to ``path``."""
    path = Path(path)
    name = getattr(model, "registry_name", None)
    if name is None:
        raise ModelError(f"cannot save {type(model).__name__}: it is not a registered model")
    tensors = {f"model/{k}": _cpu(v) for k, v in model.state_dict().items()}
    if ema_state is not None:
        tensors.update({f"ema/{k}": _cpu(v) for k, v in ema_state.items()})
    optim_meta = None
    if optimizer is not None:
        state = optimizer.state_dict()
        plain: dict[str, dict[str, Any]] = {}
        for pid, entries in state["state"].items():
            for key, value in entries.items():
                if isinstance(value, Tensor):
                    tensors[f"optim/{pid}/{key}"] = _cpu(value)
                else:
                    plain.setdefault(str(pid), {})[key] = value
        optim_meta = {
            "class": type(optimizer).__name__,
            "param_groups": state["param_groups"],
            "plain_state": plain,
        }
    if save_rng:
        tensors["rng/cpu"] = torch.get_rng_state()
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            tensors["rng/cuda"] = torch.stack(torch.cuda.get_rng_state_all())
    meta = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "model": name,
        "model_config": dataclasses.asdict(model.config),
        "train_config": dataclasses.asdict(train_config) if train_config is not None else None,
        "step": int(step),
        "has_ema": ema_state is not None,
        "optimizer": optim_meta,
        "versions": versions(),
        **(extra or {}),
    }
    atomic_write(path, _serialize(tensors, meta))
    return path


COMPACT = "fp16-weights/bf16-moments"


def write_compact(path: Path | str, out: Path | str) -> Path:
    """A checkpoint's resumable state in about half the bytes, for a run that continues on
    another machine: weights and EMA weights in float16, the optimizer's floating moments in
    bfloat16 (their range: an Adamax infinity norm can fall below float16's smallest
    number, and a zero there divides the step by epsilon), step counters, RNG state and
    everything else as they are. :func:`expand_compact` gives back a checkpoint that
    ``train`` resumes from, its floats rounded once."""
    tensors, meta = read(path)

    def small(key: str, value: Tensor) -> Tensor:
        if not value.is_floating_point() or key.endswith("/step") or key.startswith("rng/"):
            return value
        if key.startswith("optim/"):
            return value.to(torch.bfloat16)
        fits = value.numel() == 0 or float(value.abs().max()) <= 65504  # fp16's range
        return value.to(torch.float16) if fits else value

    out = Path(out)
    atomic_write(out, _serialize({k: small(k, v) for k, v in tensors.items()},
                                 dict(meta, compact=COMPACT)))  # fmt: skip
    return out


def expand_compact(path: Path | str, out: Path | str) -> Path:
    """The checkpoint of a :func:`write_compact` file, float32 again: what ``train`` resumes."""
    tensors, meta = read(path)
    if meta.pop("compact", None) != COMPACT:
        raise _fail(Path(path), f"not a compact checkpoint ({COMPACT})")
    full = {k: v.float() if v.dtype in (torch.float16, torch.bfloat16) else v
            for k, v in tensors.items()}  # fmt: skip
    out = Path(out)
    atomic_write(out, _serialize(full, meta))
    return out


def read_meta(path: Path | str) -> dict[str, Any]:
    """The metadata of a checkpoint, from its header alone (the tensors are not read)."""
    path = Path(path)
    if not path.is_file():
        raise _fail(path, "no such file")
    with path.open("rb") as f:
        head = f.read(8)
        header_len = int.from_bytes(head, "little") if len(head) == 8 else -1
        header = f.read(header_len) if 0 < header_len < 100_000_000 else b""
    return _check_meta(path, head + header, header_len, path.stat().st_size)


def _check_meta(path: Path, raw: bytes, header_len: int, size: int) -> dict[str, Any]:
    if raw[:4] == b"PK\x03\x04":
        raise _fail(
            path, "this is a pickle (torch.save) file, not a vlae-bench safetensors checkpoint"
        )
    if size < 8:
        raise _fail(path, f"truncated ({size} bytes)")
    if header_len < 0 or 8 + header_len > size:
        raise _fail(
            path,
            f"truncated or not a safetensors file (header claims {header_len} bytes, "
            f"file has {size})",
        )
    try:
        header = json.loads(raw[8 : 8 + header_len])
        meta = json.loads(header["__metadata__"][META_KEY])
    except (ValueError, KeyError, TypeError):
        raise _fail(path, "not a vlae-bench checkpoint (no readable vlae_bench metadata)") from None
    if meta.get("format") != FORMAT:
        raise _fail(path, f"not a vlae-bench checkpoint (format {meta.get('format')!r})")
    if int(meta.get("format_version", 0)) > FORMAT_VERSION:
        raise _fail(
            path,
            f"written by a newer vlae-bench (format {meta['format_version']}, "
            f"this version reads up to {FORMAT_VERSION})",
        )
    return meta


def calibrate(path: Path | str, pixels: Tensor, source: str) -> dict[str, Any]:
    """Give the model in a checkpoint its codec's own quantization steps, measured on
    ``pixels`` (uint8 training images; ``source`` says which), and rewrite the file with
    them in every weights section: its streams then carry no steps. Returns the record
    kept in the file's metadata. A model without ``calibrate`` raises ModelError."""
    path = Path(path)
    tensors, meta = read(path)
    model, _ = load(path, weights="ema")
    if not hasattr(model, "calibrate"):
        raise ModelError(f"a '{meta['model']}' has no calibrated codec steps")
    model.calibrate(model.prepare(pixels))
    dtype = torch.float16 if meta.get("storage") == "float16" else torch.float32
    for prefix in ["model/"] + (["ema/"] if meta.get("has_ema") else []):
        for key in model.optional_state:
            tensors[prefix + key] = _cpu(getattr(model, key)).to(dtype)
    meta["calibration"] = {"images": len(pixels), "source": source}
    atomic_write(path, _serialize(tensors, meta))
    return meta["calibration"]


def read(path: Path | str) -> tuple[dict[str, Tensor], dict[str, Any]]:
    """Validate a checkpoint file and return its tensors and metadata (nothing is executed)."""
    path = Path(path)
    if not path.is_file():
        raise _fail(path, "no such file")
    raw = path.read_bytes()
    header_len = int.from_bytes(raw[:8], "little") if len(raw) >= 8 else -1
    meta = _check_meta(path, raw, header_len, len(raw))
    digest = hashlib.sha256(raw[8 + header_len :]).hexdigest()
    if digest != meta.get("data_sha256"):
        raise _fail(
            path, "corrupt: the tensor data does not match its SHA-256 (damaged or truncated)"
        )
    try:
        tensors = st_load(raw)
    except Exception as err:  # safetensors raises its own error types for bad layouts
        raise _fail(path, f"corrupt: {err}") from None
    return tensors, meta


def _section(tensors: dict[str, Tensor], prefix: str) -> dict[str, Tensor]:
    return {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}


def load_state_checked(module: nn.Module, state: dict[str, Tensor], path: Path, what: str) -> None:
    """``module.load_state_dict(state)`` with a one-line error when the shapes or keys differ.
    Buffers the module lists in ``optional_state`` (its codec's calibrated steps) may be
    missing: a file written before they existed keeps their initial value."""
    expected = module.state_dict()
    optional = set(getattr(module, "optional_state", ()))
    missing = sorted(set(expected) - set(state) - optional)
    unexpected = sorted(set(state) - set(expected))
    shapes = [
        f"{k} is {tuple(state[k].shape)} in the file but {tuple(v.shape)} in the model"
        for k, v in expected.items()
        if k in state and tuple(state[k].shape) != tuple(v.shape)
    ]
    if missing or unexpected or shapes:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing key(s) (first: {missing[0]})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected key(s) (first: {unexpected[0]})")
        if shapes:
            parts.append(f"{len(shapes)} shape mismatch(es) (first: {shapes[0]})")
        raise _fail(path, f"{what} do not fit the model architecture: " + "; ".join(parts))
    module.load_state_dict(state, strict=not optional)


def build_from_meta(meta: dict[str, Any], path: Path) -> LatentModel:
    """Rebuild the registered model named in ``meta`` with its stored config."""
    entry = get_entry(meta["model"])
    known = {f.name for f in dataclasses.fields(entry.config_cls)}
    stored = dict(meta.get("model_config") or {})
    unknown = sorted(set(stored) - known)
    if unknown:
        raise _fail(
            path, f"config keys {unknown} are unknown to model '{entry.name}' in this version"
        )
    try:
        return entry.model_cls(entry.config_cls(**stored))
    except ModelError as err:
        raise _fail(path, f"stored config is invalid: {err}") from None


def load(
    path: Path | str, *, device: str | torch.device = "cpu", weights: str = "ema"
) -> tuple[LatentModel, dict[str, Any]]:
    """Rebuild a model from a checkpoint without repeating its config.

    ``weights="ema"`` (default) loads the Polyak/EMA weights when the file has them, which are
    the weights meant for evaluation; ``weights="raw"`` loads the last optimiser iterate.
    The model is returned in eval mode on ``device``; ``meta`` is the stored metadata, with
    ``meta["weights"]`` saying which weights were loaded.
    """
    path = Path(path)
    if weights not in ("ema", "raw"):
        raise ModelError(f"weights must be 'ema' or 'raw', got {weights!r}")
    tensors, meta = read(path)
    model = build_from_meta(meta, path)
    use_ema = weights == "ema" and meta.get("has_ema")
    prefix = "ema/" if use_ema else "model/"
    load_state_checked(model, _section(tensors, prefix), path, "weights")
    meta["weights"] = "ema" if use_ema else "raw"
    return model.to(device).eval(), meta


def restore_training(
    path: Path,
    model: LatentModel,
    optimizer: torch.optim.Optimizer,
    loaded: tuple[dict[str, Tensor], dict[str, Any]] | None = None,
) -> tuple[dict[str, Any], dict[str, Tensor] | None]:
    """Load raw weights, optimizer state and RNG state for resuming; return (meta, ema state).

    ``loaded`` is the result of :func:`read` if the caller already has it.
    """
    tensors, meta = loaded if loaded is not None else read(path)
    if meta["model"] != getattr(model, "registry_name", None):
        raise _fail(path, f"holds model '{meta['model']}', not '{model.registry_name}'")
    load_state_checked(model, _section(tensors, "model/"), path, "weights")
    optim_meta = meta.get("optimizer")
    if optim_meta is None:
        raise _fail(path, "has no optimizer state, so training cannot resume from it")
    if optim_meta["class"] != type(optimizer).__name__:
        raise _fail(
            path, f"optimizer is {optim_meta['class']}, the run asks for {type(optimizer).__name__}"
        )
    state: dict[int, dict[str, Any]] = {}
    for key, value in _section(tensors, "optim/").items():
        pid, name = key.split("/", 1)
        state.setdefault(int(pid), {})[name] = value
    for pid, entries in optim_meta["plain_state"].items():
        state.setdefault(int(pid), {}).update(entries)
    try:
        optimizer.load_state_dict({"state": state, "param_groups": optim_meta["param_groups"]})
    except (ValueError, KeyError, RuntimeError) as err:
        raise _fail(path, f"optimizer state does not fit the model: {err}") from None
    if "rng/cpu" in tensors:
        torch.set_rng_state(tensors["rng/cpu"])
    if "rng/cuda" in tensors and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(list(tensors["rng/cuda"]))
    ema = _section(tensors, "ema/") if meta.get("has_ema") else None
    return meta, ema
