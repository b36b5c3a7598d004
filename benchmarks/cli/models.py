"""Commands of the models: ``models``, ``train``, ``eval``, ``export-compressai`` and ``zoo``."""

from __future__ import annotations

import time
from pathlib import Path

import typer

from benchmarks.cli.app import DataDir, Plugins, app, load_plugins, zoo_app


@app.command("models")
def models_command(plugin: list[str] = Plugins) -> None:
    """List the registered models, and every field `--set` accepts (model and training)."""
    load_plugins(plugin)
    from vlae_models.config import TrainConfig, field_defaults
    from vlae_models.core import MODELS, available_models

    entries = available_models()
    width = max(len(entry.name) for entry in entries)
    for entry in entries:
        origin = MODELS.origin(entry.name)
        source = "" if origin.kind == "builtin" else f"  ({origin.label})"
        typer.echo(f"{entry.name:{width}} {entry.description}{source}")
        fields = ", ".join(f"{k}={v!r}" for k, v in field_defaults(entry.config_cls).items())
        typer.echo(f"{'':{width}} config: {fields}")
    fields = ", ".join(f"{k}={v!r}" for k, v in field_defaults(TrainConfig).items())
    typer.echo(f"{'training':{width}} (every model) {fields}")


@app.command("train")
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
    plugin: list[str] = Plugins,
) -> None:
    """Train a model; re-running with the same --out resumes from its checkpoint."""
    load_plugins(plugin)
    from benchmarks.datasets import check_dataset

    check_dataset(dataset, data_dir)
    from benchmarks.runs.model_runs import train_config, train_to

    model_over, config = train_config(model, set_, beta=beta, steps=steps, epochs=epochs)
    ckpt = train_to(
        out, model, dataset, model_config=model_over, config=config, split=split,
        eval_split=eval_split, data_dir=data_dir, fresh=fresh,
    )  # fmt: skip
    typer.echo(f"checkpoint: {ckpt}")


@app.command("eval")
def eval_command(
    checkpoint: str = typer.Argument(..., help="A checkpoint written by train, or zoo:NAME."),
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
    overwrite: bool = typer.Option(False, help="Replace another evaluation's results in --out."),
    progress: bool = typer.Option(True, help="Progress bar for the IWAE pass."),
    compile: bool = typer.Option(
        False,
        help="torch.compile the model's networks: same numbers to float tolerance, "
        "about 3x faster IWAE on a CPU after a compile of tens of seconds.",
    ),
    dtype: str = typer.Option(
        "fp32", help="fp32, bf16 or fp16: autocast of the networks (GPU); likelihoods stay fp32."
    ),
    plugin: list[str] = Plugins,
) -> None:
    """Split-level likelihood statistics: ELBO, IWAE, KL per level, active units, I(x;z)."""
    load_plugins(plugin)
    from benchmarks.datasets import check_dataset
    from vlae_models.files import check_checkpoint

    check_checkpoint(checkpoint)
    check_dataset(dataset, data_dir)
    from benchmarks.report import render_report
    from benchmarks.results import load_runs
    from benchmarks.runs.model_runs import eval_to

    start = time.perf_counter()
    store = eval_to(
        out, checkpoint, dataset, split=split, iw_samples=iw_samples, data_dir=data_dir,
        weights=weights, batch_size=batch_size, limit=limit, device=device, overwrite=overwrite,
        progress=progress, compile=compile, dtype=dtype,
    )  # fmt: skip
    frame = store.frame()
    render_report(frame, out, runs=load_runs([out]))
    keys = ("rate_kind", "estimator", "rate_nats", "distortion_nats", "nll_nats", "bits_per_dim")
    for row in frame[frame["image"] == "__all__"].to_dict("records"):
        typer.echo("  ".join(f"{k}={_fmt(row[k])}" for k in keys if k in row))
    typer.echo(f"{len(frame)} row(s), {time.perf_counter() - start:.1f} s -> {out}")


def _fmt(value: object) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


@app.command("export-compressai")
def export_compressai_command(
    checkpoint: str = typer.Argument(..., help="A CompressAI net trained by train, or zoo:NAME."),
    out: Path = typer.Argument(..., help="Output file, e.g. net.pth.tar."),
) -> None:
    """Write a trained CompressAI net in CompressAI's layout ({"state_dict": ...}), for
    `python -m compressai.utils.eval_model checkpoint DIR -a ARCH -p OUT`."""
    from vlae_models.compressai_nets import export_compressai
    from vlae_models.zoo import resolve

    typer.echo(f"wrote {export_compressai(resolve(checkpoint), out)}")


@zoo_app.command("list")
def zoo_list() -> None:
    """Each reference checkpoint: its model, size, and the test numbers it reproduces."""
    from vlae_models.zoo import index, zoo_dir

    entries = index()
    if not entries:
        typer.echo(f"no zoo at {zoo_dir()}")
    width = max(map(len, entries), default=0)
    for name, entry in entries.items():
        numbers = "; ".join(
            f"{key}: NLL {values['nll_nats']:.2f} nats" for key, values in
            entry.get("reference", {}).items() if "nll_nats" in values
        )  # fmt: skip
        typer.echo(
            f"{name:{width}}  {entry['model']:20} {entry['bytes'] / 2**20:5.1f} MB  {numbers}"
        )


@zoo_app.command("export")
def zoo_export(
    run: Path = typer.Argument(..., help="A training run folder (checkpoint and run.json)."),
    name: str = typer.Argument(..., help="Zoo name, e.g. vlae-binarized-mnist."),
    fp16: bool = typer.Option(False, help="Store the weights in half precision (half size)."),
) -> None:
    """Export a run's EMA weights, configs and provenance as a weights-only zoo checkpoint."""
    from benchmarks.runs.model_runs import export_to_zoo

    typer.echo(f"-> {export_to_zoo(run, name, fp16=fp16)}")


@app.command("calibrate")
def calibrate_command(
    checkpoint: str = typer.Argument(..., help="A checkpoint path or zoo:NAME, rewritten."),
    dataset: str = typer.Option(..., help="The dataset the model was trained on."),
    split: str = typer.Option("train", help="A training split (never the test split)."),
    limit: int = typer.Option(2000, min=1, help="Images measured."),
    data_dir: Path | None = DataDir,
) -> None:
    """Give a model its codec's own quantization steps (training ends with this; older
    checkpoints need it): its streams then carry no steps."""
    from benchmarks.runs.model_runs import calibrate_to

    record = calibrate_to(checkpoint, dataset, split=split, limit=limit, data_dir=data_dir)
    typer.echo(f"{checkpoint}: calibrated on {record['source']}")


@zoo_app.command("reference")
def zoo_reference(
    name: str = typer.Argument(..., help="Zoo name."),
    evaluation: list[Path] = typer.Argument(..., help="`vlae-bench eval` folders of NAME."),
) -> None:
    """Record the test numbers that evaluations of a zoo checkpoint measured, in its index."""
    from benchmarks.runs.model_runs import record_reference

    typer.echo(record_reference(name, evaluation))
