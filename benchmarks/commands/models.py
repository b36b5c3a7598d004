"""``vlae-bench models``, ``train`` and ``eval``: thin wrappers over :mod:`vlae_models`.

    vlae-bench models
    vlae-bench train beta-vae --dataset binarized-mnist --beta 1 --steps 20000 --out runs/bvae
    vlae-bench train vq-vae --dataset mnist --epochs 5 --set likelihood=logistic-mixture \\
        --out runs/vq
    vlae-bench eval runs/bvae/checkpoint.safetensors --dataset binarized-mnist --split test \\
        --iw-samples 1000 --out runs/bvae/eval

``--set key=value`` (repeatable) sets a field of the model config or of ``TrainConfig``;
prefix it with ``model.`` or ``train.`` if a name were ever in both. Values are parsed as
bool (true/false), none, int, float, else kept as text.
"""

from __future__ import annotations

import dataclasses
import json
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import typer

from benchmarks.errors import BenchError
from benchmarks.report import load_runs, render_report
from benchmarks.results import RUN_JSON, recorded_run

DataDir = typer.Option(None, "--data-dir", help="Dataset root (else $VLAE_BENCH_DATA, cache).")


def register(app: typer.Typer) -> None:
    """Add the ``models``, ``train`` and ``eval`` commands to ``app``."""
    app.command("models")(models_command)
    app.command("train")(train_command)
    app.command("eval")(eval_command)


def models_command() -> None:
    """List the registered latent-variable models and their config fields."""
    from vlae_models.core import available_models

    for entry in available_models():
        typer.echo(f"{entry.name:10} {entry.description}")
        fields = ", ".join(f"{f.name}={f.default!r}" for f in dataclasses.fields(entry.config_cls))
        typer.echo(f"{'':10} config: {fields}")


def train_command(
    model: str = typer.Argument(..., help="Registry name, see `vlae-bench models`."),
    dataset: str = typer.Option(..., help="binarized-mnist, mnist, ..."),
    beta: float | None = typer.Option(None, help="Weight of the rate term (default 1)."),
    steps: int | None = typer.Option(None, min=1, help="Optimisation steps."),
    epochs: float | None = typer.Option(None, min=0.0, help="Epochs (instead of --steps)."),
    set_: list[str] = typer.Option(
        [], "--set", help="key=value for a model-config or TrainConfig field. Repeatable."
    ),
    split: str = typer.Option("train", help="Training split."),
    eval_split: str | None = typer.Option(
        None, help="Split evaluated (ELBO) at the end and every eval_every steps."
    ),
    data_dir: Path | None = DataDir,
    out: Path = typer.Option(..., help="Run folder: checkpoint, train log, run.json."),
    fresh: bool = typer.Option(False, help="Ignore an existing checkpoint in --out."),
) -> None:
    """Train a model; re-running with the same --out resumes from its checkpoint."""
    from vlae_models.core import get_entry
    from vlae_models.train import TrainConfig, train

    entry = get_entry(model)
    model_over, train_over = parse_overrides(set_, entry.config_cls, TrainConfig)
    for name, value in (("beta", beta), ("steps", steps), ("epochs", epochs)):
        if value is not None:
            if name in train_over:
                raise BenchError(f"--{name} and --set {name}=... both given; use one")
            train_over[name] = value
    if "steps" not in train_over and "epochs" not in train_over:
        raise BenchError("give --steps N or --epochs E")
    config = TrainConfig(**train_over)
    pixels = load_pixels(dataset, split, data_dir, config.seed)
    eval_pixels = load_pixels(dataset, eval_split, data_dir, config.seed) if eval_split else None
    out.mkdir(parents=True, exist_ok=True)
    earlier = {} if fresh else earlier_wall_time(out)
    with recorded_run(
        out, "train", model=model, dataset=dataset, split=split,
        model_config=model_over, train_config=dataclasses.asdict(config), **earlier,
    ):  # fmt: skip
        ckpt = train(
            model, pixels, config=config, out_dir=out, eval_data=eval_pixels,
            model_config=model_over, resume=not fresh,
        )  # fmt: skip
    typer.echo(f"checkpoint: {ckpt}")


def earlier_wall_time(out: Path) -> dict[str, float]:
    """``{"earlier_wall_s": seconds}`` that earlier sessions of a resumed run spent reaching
    the checkpoint it resumes from; empty when there is nothing to resume.

    A finished or interrupted session recorded its ``wall_s``; one that was killed did not, and
    counts from its start to the checkpoint's last write (later steps are redone, and counted,
    by the new session). Sessions chain through their own ``earlier_wall_s``.
    """
    from vlae_models.train import CHECKPOINT_NAME

    run, ckpt = out / RUN_JSON, out / CHECKPOINT_NAME
    if not (run.exists() and ckpt.exists()):
        return {}
    try:
        info = json.loads(run.read_text())
        wall = info.get("wall_s")
        if wall is None:
            started = datetime.fromisoformat(info["started"]).timestamp()
            wall = max(0.0, ckpt.stat().st_mtime - started)
    except (json.JSONDecodeError, KeyError, ValueError) as err:
        raise BenchError(f"{run} is damaged ({err}); move it away or train with --fresh") from err
    return {"earlier_wall_s": round(float(info.get("earlier_wall_s", 0.0)) + float(wall), 2)}


def eval_command(
    checkpoint: Path = typer.Argument(..., help="A checkpoint.safetensors written by train."),
    dataset: str = typer.Option(..., help="binarized-mnist, mnist, ..."),
    split: str = typer.Option("test", help="Split to evaluate."),
    iw_samples: int = typer.Option(0, min=0, help="k for the IWAE bound (0: ELBO only)."),
    data_dir: Path | None = DataDir,
    out: Path = typer.Option(..., help="Folder for results.parquet/csv and PNG grids."),
    weights: str = typer.Option("ema", help="ema (Polyak weights, default) or raw."),
    batch_size: int = typer.Option(256, min=1, help="Images per batch for the ELBO pass."),
    limit: int | None = typer.Option(
        None, min=1, help="Evaluate N images spread evenly over the split (every n/N-th)."
    ),
    device: str = typer.Option("auto", help="auto, cpu, cuda, ..."),
    progress: bool = typer.Option(True, help="Progress bar for the IWAE pass."),
) -> None:
    """Evaluate a checkpoint on one split: ELBO, IWAE, active units, I(x;z), codebook stats."""
    from vlae_models.checkpoint import load
    from vlae_models.evaluate import evaluate
    from vlae_models.train import resolve_device

    model, meta = load(checkpoint, device=resolve_device(device), weights=weights)
    train_cfg = meta.get("train_config") or {}
    seed = int(train_cfg.get("seed", 0))
    pixels = load_pixels(dataset, split, data_dir, seed)
    if limit is not None and limit < len(pixels):
        # evenly spaced, not the first N: the binarized-MNIST test split is sorted by digit
        pixels = pixels[torch.linspace(0, len(pixels) - 1, limit).round().long()]
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    with recorded_run(out, "eval", checkpoint=str(checkpoint), dataset=dataset, split=split) as run:
        rows = evaluate(
            model, pixels, iw_samples=iw_samples, dataset=dataset, split=split,
            method=meta["model"], beta=train_cfg.get("beta"), seed=seed,
            batch_size=batch_size, out_dir=out, progress=progress,
        )  # fmt: skip
        for row in rows:
            row.update(checkpoint=str(checkpoint), weights=meta["weights"], run_id=run["run_id"])
        frame = _store_rows(rows, out)
    render_report(frame, out, runs=load_runs([out]))
    keys = ("rate_kind", "estimator", "rate_nats", "distortion_nats", "nll_nats", "bits_per_dim")
    for row in rows:
        typer.echo("  ".join(f"{k}={_fmt(row[k])}" for k in keys if k in row))
    typer.echo(f"{len(rows)} row(s), {time.perf_counter() - start:.1f} s -> {out}")


def load_pixels(dataset: str, split: str, data_dir: Path | None, seed: int) -> torch.Tensor:
    """uint8 (N, 1, H, W) pixels of a dataset split, through ``benchmarks.datasets``."""
    from benchmarks import datasets

    array = datasets.load_array(dataset, split, data_dir=data_dir, seed=seed)
    array = np.ascontiguousarray(array, dtype=np.uint8)
    return torch.from_numpy(array).unsqueeze(1) if array.ndim == 3 else torch.from_numpy(array)


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


def _coerce(key: str, value: Any, default: Any) -> Any:
    """Match the type of the field's default where one is known."""
    if value is None or default is None:
        return value
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise BenchError(f"--set {key}: expected true or false, got {value!r}")
        return value
    if (
        isinstance(default, float)
        and isinstance(value, int | float)
        and not isinstance(value, bool)
    ):
        return float(value)
    if isinstance(default, int):
        if isinstance(value, bool) or not isinstance(value, int):
            raise BenchError(f"--set {key}: expected an integer, got {value!r}")
        return value
    if isinstance(default, str):
        return str(value)
    return value


def parse_overrides(
    pairs: list[str], model_cls: type, train_cls: type
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Split ``key=value`` pairs into model-config and train-config overrides."""
    model_fields = {f.name: f.default for f in dataclasses.fields(model_cls)}
    train_fields = {f.name: f.default for f in dataclasses.fields(train_cls)}
    model_over: dict[str, Any] = {}
    train_over: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        key = key.strip()
        if not sep or not key:
            raise BenchError(f"--set expects key=value, got {pair!r}")
        scope, _, name = key.rpartition(".")
        value = parse_value(raw)
        in_model, in_train = name in model_fields, name in train_fields
        if scope == "model" or (not scope and in_model and not in_train):
            if not in_model:
                raise BenchError(
                    f"--set {key}: unknown model config field; known: {sorted(model_fields)}"
                )
            model_over[name] = _coerce(key, value, model_fields[name])
        elif scope == "train" or (not scope and in_train and not in_model):
            if not in_train:
                raise BenchError(
                    f"--set {key}: unknown train config field; known: {sorted(train_fields)}"
                )
            train_over[name] = _coerce(key, value, train_fields[name])
        elif not scope and in_model and in_train:
            raise BenchError(f"--set {key}: ambiguous, write model.{name} or train.{name}")
        else:
            raise BenchError(
                f"--set {key}: unknown field; model fields {sorted(model_fields)}, "
                f"train fields {sorted(train_fields)}"
            )
    return model_over, train_over


def _store_rows(rows: list[dict[str, Any]], out: Path) -> pd.DataFrame:
    """Add rows to the run folder's results, replacing earlier rows of the same evaluation."""
    from benchmarks.results import PARQUET, make_frame, read_results, write_results

    frame = make_frame(rows)
    if (out / PARQUET).exists():
        previous = read_results([out])
        key = ["dataset", "split", "method", "rate_kind", "checkpoint", "weights"]
        if set(key) <= set(previous.columns):
            new_keys = set(map(tuple, frame[key].astype(str).to_numpy()))
            stale = previous[key].astype(str).apply(tuple, axis=1).isin(new_keys)
            previous = previous[~stale]
        frame = make_frame([*previous.to_dict("records"), *rows])
    write_results(frame, out)
    return frame


def _fmt(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)
