"""Training and split-level evaluation of models as runs: what ``vlae-bench train`` and
``vlae-bench eval`` do, importable by scripts and the sweep engine.

``train_to`` trains a registered model into a run folder (resuming it); ``eval_to`` writes a
checkpoint's split-level likelihood statistics (negative ELBO, IWAE NLL, KL per level, active
units, I(x;z), codebook statistics) as rows with ``image == "__all__"``. Per-image rate and
reconstruction quality come from the evaluation path instead (``-c model:CKPT``).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from benchmarks.datasets.pixels import load_pixels
from benchmarks.errors import BenchError
from benchmarks.results import ALL_IMAGES, read_results, read_run
from benchmarks.runs.store import Job, RunStore
from vlae_models import zoo
from vlae_models.checkpoint import calibrate, load, read_meta
from vlae_models.config import TrainConfig, make_config, parse_overrides
from vlae_models.core import get_entry
from vlae_models.distributed import launched_world
from vlae_models.evaluate import evaluate
from vlae_models.train import (
    _RESUMABLE_CHANGES,
    CALIBRATION_IMAGES,
    CHECKPOINT_NAME,
    resolve_device,
    train,
)
from vlae_models.zoo import resolve, weights_digest


def train_config(model: str, overrides: Sequence[str], **given: Any) -> tuple[dict, Any]:
    """Model-config overrides and the validated ``TrainConfig`` for ``--set`` pairs plus the
    named options (``beta``, ``steps``, ``epochs``) given on their own."""
    model_over, train_over = parse_overrides(overrides, get_entry(model).config_cls, TrainConfig)
    for name, value in given.items():
        if value is None:
            continue
        if name in train_over:
            raise BenchError(f"--{name} and --set {name}=... both given; use one")
        train_over[name] = value
    if "steps" not in train_over and "epochs" not in train_over:
        raise BenchError("give --steps N or --epochs E")
    return model_over, make_config(TrainConfig, train_over, "training config")


def train_to(
    out: Path,
    model: str,
    dataset: str,
    *,
    model_config: dict[str, Any],
    config: Any,
    split: str = "train",
    eval_split: str | None = None,
    data_dir: Path | None = None,
    fresh: bool = False,
) -> Path:
    """Train ``model`` on ``dataset``/``split`` into ``out`` and return the checkpoint path."""
    resolved = dataclasses.asdict(config)
    job = Job("train", {
        "model": model, "dataset": dataset, "split": split, "eval_split": eval_split,
        "model_config": model_config,
        "train_config": {
            k: v for k, v in resolved.items() if k not in _RESUMABLE_CHANGES | {"device"}
        },
    })  # fmt: skip
    pixels = load_pixels(dataset, split, data_dir, config.seed)
    held_out = load_pixels(dataset, eval_split, data_dir, config.seed) if eval_split else None

    def run_training() -> Path:
        return train(
            model, pixels, config=config, out_dir=out, eval_data=held_out,
            model_config=model_config, resume=not fresh,
        )  # fmt: skip

    world = launched_world()
    if int(os.environ.get("RANK", "0")) != 0:  # data-parallel: rank 0 keeps the run's record
        return run_training()
    store = RunStore(out, job, overwrite=fresh, progress_file=CHECKPOINT_NAME)
    with store.running() as run:
        run.update(model=model, dataset=dataset, split=split, model_config=model_config,
                   train_config=resolved, world_size=world,
                   shard_batch=config.batch_size // world)  # fmt: skip
        return run_training()


def eval_to(
    out: Path,
    checkpoint: str,
    dataset: str,
    *,
    split: str = "test",
    iw_samples: int = 0,
    data_dir: Path | None = None,
    weights: str = "ema",
    batch_size: int = 256,
    limit: int | None = None,
    device: str = "auto",
    overwrite: bool = False,
    progress: bool = True,
    compile: bool = False,
    dtype: str = "fp32",
) -> RunStore:
    """Split-level likelihood statistics of a checkpoint (a path or ``zoo:NAME``) into ``out``.

    Evaluating the same checkpoint the same way again replaces its rows. ``compile`` is a
    speed setting (see :func:`vlae_models.evaluate.evaluate`), not part of the job; a
    reduced-precision ``dtype`` changes the numbers, so it is.
    """
    path = resolve(checkpoint)
    meta = read_meta(path)
    model_name = meta.get("model")
    if getattr(get_entry(model_name).model_cls, "is_compressai", False):  # no likelihood
        raise BenchError(
            f"{checkpoint} is a {model_name}, a codec: evaluate it with "
            f"`vlae-bench codecs -c {model_name}:{checkpoint}`"
        )
    job = Job("eval", {
        "checkpoint": str(checkpoint), "weights_sha256": weights_digest(path),
        "dataset": dataset, "split": split, "iw_samples": iw_samples, "weights": weights,
        "limit": limit, **({"dtype": dtype} if dtype != "fp32" else {}),
    })  # fmt: skip
    store = RunStore(out, job, overwrite=overwrite)
    model, meta = load(path, device=resolve_device(device), weights=weights)
    seed = int((meta.get("train_config") or {}).get("seed", 0))
    pixels = load_pixels(dataset, split, data_dir, seed, limit)
    with store.running() as run:
        rows = evaluate(
            model, pixels, iw_samples=iw_samples, dataset=dataset, split=split,
            method=meta["model"], beta=(meta.get("train_config") or {}).get("beta"), seed=seed,
            batch_size=batch_size, out_dir=out, progress=progress, compile=compile, dtype=dtype,
        )  # fmt: skip
        for row in rows:
            row.update(checkpoint=str(checkpoint), weights=meta["weights"],
                       run_id=run["run_id"], job_id=run["job_id"])  # fmt: skip
        store.add(rows, replace=True)
    return store


def export_to_zoo(run: Path, name: str, fp16: bool = False) -> Path:
    """Export the checkpoint of a training run folder to the zoo, with its provenance (the
    command, commit, start and wall time its ``run.json`` recorded)."""
    info = read_run(run)
    if info is None or info.get("kind") != "train" or info.get("status") != "complete":
        raise BenchError(f"{run} holds no finished training run (run.json kind/status)")
    keep = ("command", "git_commit", "started", "wall_s", "earlier_wall_s", "dataset", "split")
    provenance = {k: info[k] for k in keep if k in info}
    return zoo.export(Path(run) / CHECKPOINT_NAME, name, provenance=provenance, fp16=fp16)


def calibrate_to(
    ref: str,
    dataset: str,
    *,
    split: str = "train",
    limit: int = CALIBRATION_IMAGES,
    data_dir: Path | None = None,
) -> dict[str, Any]:
    """Give a checkpoint (a path or ``zoo:NAME``) its codec's quantization steps, measured on
    ``limit`` images of a training split, in place; a zoo entry's index records the change."""
    if split == "test":
        raise BenchError("calibrate on training images: steps fitted to the test split would "
                         "flatter every coded rate measured on it")  # fmt: skip
    path = resolve(ref)
    meta = read_meta(path)
    seed = int((meta.get("train_config") or {}).get("seed", 0))
    pixels = load_pixels(dataset, split, data_dir, seed, limit)
    record = calibrate(path, pixels, f"{dataset} {split}, {len(pixels)} images spread over it")
    if ref.startswith(zoo.PREFIX):
        zoo.record_calibration(ref[len(zoo.PREFIX) :], record)
    return record


REFERENCE_COLUMNS = ("neg_elbo_nats", "nll_nats", "kl_nats", "rate_nats", "distortion_nats",
                     "bits_per_dim", "iw_samples", "n_examples")  # fmt: skip


def record_reference(name: str, evaluations: Sequence[Path]) -> dict[str, Any]:
    """Store the split-level numbers of ``vlae-bench eval`` runs of ``zoo:NAME`` in the zoo
    index, keyed ``SPLIT/IMAGES/ESTIMATOR[/RATE_KIND]``, and return them."""
    frame = read_results(evaluations)
    rows = frame[(frame["image"] == ALL_IMAGES) & (frame["checkpoint"] == f"zoo:{name}")]
    if rows.empty:
        raise BenchError(f"no evaluation of zoo:{name} in {', '.join(map(str, evaluations))}")
    numbers = {}
    for row in rows.to_dict("records"):
        key = f"{row['split']}/{int(row['n_examples'])}/{row['estimator']}"
        if row["rate_kind"] != "kl":
            key += f"/{row['rate_kind']}"
        numbers[key] = {c: row[c] for c in REFERENCE_COLUMNS if c in row and row[c] == row[c]}
    zoo.set_reference(name, numbers)
    return numbers
