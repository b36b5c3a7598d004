"""The suite's own reference weights, shipped in the repository so that loading works offline.

CompressAI's zoo downloads weights at run time; ours are small weights-only checkpoints in
``results/zoo/`` (or ``$VLAE_BENCH_ZOO``): safetensors files in the checkpoint format of
:mod:`vlae_models.checkpoint` holding only the EMA (Polyak) weights, the model and training
configs, the command and commit that trained them, and the test numbers they reproduce.
``index.json`` lists them. ``zoo:NAME`` loads one wherever a checkpoint path is accepted
(``vlae-bench eval zoo:vlae-binarized-mnist``, ``vlae-bench codecs -c zoo:NAME``).
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
from pathlib import Path
from typing import Any

import torch

from vlae_models import checkpoint
from vlae_models.core import ModelError
from vlae_models.files import atomic_write

PREFIX = "zoo:"
INDEX = "index.json"
MAX_BYTES = 16 * 2**20


def zoo_dir() -> Path:
    env = os.environ.get("VLAE_BENCH_ZOO")
    return Path(env) if env else Path(__file__).resolve().parents[1] / "results" / "zoo"


def index(folder: Path | None = None) -> dict[str, dict[str, Any]]:
    """``{name: entry}`` of the zoo's ``index.json`` (empty when there is none)."""
    path = (folder or zoo_dir()) / INDEX
    if not path.exists():
        return {}
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ModelError(f"zoo index {path} is damaged: {err}") from None


def resolve(ref: str | Path) -> Path:
    """A checkpoint path for ``ref``: ``zoo:NAME`` looks NAME up in the zoo, else a path."""
    text = str(ref)
    if not text.startswith(PREFIX):
        return Path(text)
    name, folder = text[len(PREFIX) :], zoo_dir()
    entries = index(folder)
    if name not in entries:
        known = ", ".join(sorted(entries)) or f"none (no {folder / INDEX})"
        raise ModelError(f"unknown zoo model '{name}'; available: {known}")
    return folder / entries[name]["file"]


def weights_digest(ref: str | Path) -> str:
    """The one definition of "the same weights": the SHA-256 of the weights file's bytes
    (``zoo:NAME`` or a path), first 16 hex digits. A retrained checkpoint at the same path
    is other weights; job ids and results record it. (A stream's header names its decoder
    by a hash of the weights held in memory instead, :func:`baselines.container.identity`:
    the decoder has no file to hash when CompressAI downloaded it.)"""
    path = resolve(ref)
    try:
        stat = path.stat()
    except OSError as err:
        raise ModelError(f"no weights file at {path} ({err.strerror})") from None
    return _file_digest(str(path.resolve()), stat.st_mtime_ns, stat.st_size)


@functools.lru_cache(maxsize=256)
def _file_digest(path: str, mtime_ns: int, size: int) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16]


def export(
    checkpoint_path: Path,
    name: str,
    *,
    provenance: dict[str, Any],
    fp16: bool = False,
    folder: Path | None = None,
) -> Path:
    """Write ``NAME.safetensors`` (the EMA weights only, with ``provenance`` in its metadata)
    and its ``index.json`` entry; return the file.

    ``fp16`` stores the floating-point weights in half precision (loading casts them back to
    float32): half the bytes, for models over the 16 MB limit. Its effect on the numbers is
    measured, not assumed (``results/zoo/README.md``, ``tests/test_methods.py``).
    """

    folder = folder or zoo_dir()
    model, meta = checkpoint.load(checkpoint_path, weights="ema")
    if fp16:
        model = model.to(torch.float16)
    target = folder / f"{name}.safetensors"
    kept = {k: meta[k] for k in ("train_config", "step", "data_fingerprint") if k in meta}
    storage = "float16" if fp16 else "float32"
    extra = {**kept, "weights": meta["weights"], "provenance": provenance, "storage": storage}
    checkpoint.save(target, model, extra=extra)
    size = target.stat().st_size
    if size > MAX_BYTES:
        target.unlink()
        hint = "" if fp16 else " (export with fp16 storage to halve it)"
        raise ModelError(f"{name}: {size / 2**20:.1f} MB is over the zoo's 16 MB limit{hint}")
    entry = {"file": target.name, "model": meta["model"], "bytes": size, "storage": storage,
             "provenance": provenance}  # fmt: skip
    _write_index({**index(folder), name: entry}, folder)
    return target


def record_calibration(name: str, calibration: dict[str, Any], folder: Path | None = None) -> None:
    """After :func:`vlae_models.checkpoint.calibrate` rewrote a zoo file: its new size and
    what it was calibrated on, in the index."""
    folder = folder or zoo_dir()
    entries = index(folder)
    entry = entries[name]
    entry.update(bytes=(folder / entry["file"]).stat().st_size, calibration=calibration)
    _write_index(entries, folder)


def set_reference(name: str, numbers: dict[str, Any], folder: Path | None = None) -> None:
    """Record the test numbers a zoo checkpoint reproduces (in the index, not the file),
    keyed ``SPLIT/IMAGES/ESTIMATOR[/RATE_KIND]``: beside the ones already there, replacing
    those of the same key (an export starts its entry afresh, so none outlives its weights)."""
    folder = folder or zoo_dir()
    entries = index(folder)
    if name not in entries:
        raise ModelError(f"unknown zoo model '{name}'")
    entries[name]["reference"] = {**entries[name].get("reference", {}), **numbers}
    _write_index(entries, folder)


def _write_index(entries: dict[str, Any], folder: Path) -> None:
    atomic_write(folder / INDEX, json.dumps(entries, indent=2, sort_keys=True) + "\n")
