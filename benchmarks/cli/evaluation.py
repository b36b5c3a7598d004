"""Commands of the evaluation path: ``codecs``, ``fuzz`` and ``report``."""

from __future__ import annotations

import time
from pathlib import Path

import typer

from benchmarks.cli.app import (
    DataDir,
    Plugins,
    WeightsDir,
    app,
    echo_err,
    load_plugins,
    run_folder,
    use_weights_dir,
)


def method_listing() -> str:
    """Every registered method: name, rates, parameter, where it comes from, availability."""
    from baselines.method import METHODS

    lines = []
    for name, cls in METHODS.items():
        p = cls.param
        state = cls.unavailable_reason() or "available"
        kind = "lossless" if cls.lossless else "/".join(cls.rate_kinds)
        origin = METHODS.origin(name)
        source = "" if origin.kind == "builtin" else f"  ({origin.label})"
        lines.append(
            f"{name:9} {kind:14} {p.name}={p.low:g}..{p.high:g} (default {p.default:g})  "
            f"{cls.description}  [{state}]{source}"
        )
    return "\n".join(lines)


def metric_listing() -> str:
    from benchmarks.metrics import DEFAULT, METRICS

    lines = []
    for name, cls in METRICS.items():
        columns = ", ".join(f"{c} ({b} is better)" for c, b in cls.columns.items())
        origin = METRICS.origin(name)
        source = "" if origin.kind == "builtin" else f"  ({origin.label})"
        when = "default" if name in DEFAULT else "opt-in"
        size = f"{cls.min_side} px+" if cls.min_side > 1 else ""
        lines.append(f"{name:14} {when:8} {cls.data:6} {size:8} {columns}{source}")
        if cls.__doc__ and origin.kind == "builtin":
            lines.append(f"{'':24}{' '.join(cls.__doc__.split())}")
    return "\n".join(lines)


@app.command()
def codecs(
    dataset: str = typer.Option(
        "kodak",
        help="kodak, embedded, mnist, binarized-mnist, folder:PATH; options after a "
        "colon: kodak:patches=64, mnist:crop=16, binarized-mnist:mosaic.",
    ),
    codec: list[str] = typer.Option(
        [],
        "--codec",
        "-c",
        help="NAME or NAME=START:STOP:STEP, model:CHECKPOINT, zoo:NAME. Repeatable.",
    ),
    quality: str | None = typer.Option(
        None, help="Quality sweep START:STOP:STEP or a comma list (codecs with a quality)."
    ),
    metrics: str | None = typer.Option(
        None, help="More metrics beside the default set, a comma list (see --list)."
    ),
    split: str | None = typer.Option(None, help="Split of an array dataset (default test)."),
    out: Path = typer.Option(Path("runs/codecs"), help="Run folder for results and report."),
    data_dir: Path | None = DataDir,
    limit: int | None = typer.Option(
        None, min=1, help="First N images; N rows spread evenly over an array split."
    ),
    workers: int | None = typer.Option(None, min=1, help="Processes (default: all cores)."),
    device: str = typer.Option("cpu", help="Device for model methods: cpu, cuda, ..."),
    overwrite: bool = typer.Option(False, help="Start afresh instead of resuming in --out."),
    anchor: str | None = typer.Option(None, help="Anchor method for BD-rate (default jpeg)."),
    latex: bool = typer.Option(False, help="Also write report.tex."),
    list_codecs: bool = typer.Option(False, "--list", help="List methods and metrics, exit."),
    plugin: list[str] = Plugins,
    weights_dir: Path | None = WeightsDir,
) -> None:
    """Evaluate codecs and model checkpoints on one dataset: one table, report and RD plots."""
    load_plugins(plugin)
    use_weights_dir(weights_dir)
    if list_codecs:
        typer.echo(method_listing())
        typer.echo("\nmetrics (--metrics NAME,...):")
        typer.echo(metric_listing())
        return
    from baselines.method import check_names
    from benchmarks.datasets import check_dataset
    from benchmarks.metrics import metric_names

    asked = [m.strip() for m in metrics.split(",") if m.strip()] if metrics else None
    check_names(codec)  # names and paths first: a typo is refused before torch loads
    metric_names(asked)
    check_dataset(dataset, data_dir)
    from benchmarks.report import render_report
    from benchmarks.results import load_runs
    from benchmarks.runs.codec_runs import evaluate_to

    start = time.perf_counter()
    store = evaluate_to(
        out, dataset, codec, quality=quality, metrics=asked, split=split, data_dir=data_dir,
        limit=limit, workers=workers, device=device, overwrite=overwrite, echo=echo_err,
    )  # fmt: skip
    frame = store.frame()
    render_report(frame, out, runs=load_runs([out]), anchor=anchor, latex=latex)
    typer.echo(f"{len(frame)} rows, {time.perf_counter() - start:.1f} s -> {out}")


@app.command()
def realism(
    codec: list[str] = typer.Option([], "--codec", "-c", help="As for codecs. Repeatable."),
    dataset: str = typer.Option("kodak", help="Images with sides of 256 px or more."),
    inception_weights: Path | None = typer.Option(
        None, help="torch-fidelity's FID Inception weights (pt_inception-2015-12-05-6726825d.pth)."
    ),
    quality: str | None = typer.Option(None, help="Quality sweep, as for codecs."),
    out: Path = typer.Option(Path("runs/realism"), help="Folder for realism.csv."),
    data_dir: Path | None = DataDir,
    limit: int | None = typer.Option(None, min=1, help="First N images."),
    device: str = typer.Option("cpu", help="Device for model methods and the network."),
    overwrite: bool = typer.Option(False, help="Replace an earlier realism.csv in --out."),
    plugin: list[str] = Plugins,
) -> None:
    """FID and KID of each method's reconstructions on 256-px patches (HiFiC's protocol)."""
    load_plugins(plugin)
    from baselines.method import check_names
    from benchmarks.datasets import check_dataset

    check_names(codec)
    check_dataset(dataset, data_dir)
    from benchmarks.metrics.realism import RealismError, inception_from_file

    target = out / "realism.csv"
    if target.exists() and not overwrite:
        raise RealismError(f"{target} exists: pass --overwrite to replace it, or another --out")
    network = inception_from_file(inception_weights)
    from benchmarks import load_items
    from benchmarks.evaluation.realism import realism as realism_table
    from vlae_models.files import atomic_write

    items = load_items(dataset, data_dir=data_dir, limit=limit)
    table = realism_table(items, codec, network.to(device), quality=quality, device=device)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write(target, table.to_csv(index=False))
    typer.echo(table.to_markdown(index=False, floatfmt=".4g"))


@app.command()
def fuzz(
    codec: str = typer.Option(..., "--codec", "-c", help="One method setting: jpeg=50, ARCH:CKPT."),
    dataset: str = typer.Option("kodak:crop=128", help="Images whose streams are mutated."),
    data_dir: Path | None = DataDir,
    limit: int = typer.Option(2, min=1, help="Images to encode."),
    streams: int = typer.Option(600, min=1, help="Mutated streams to decode."),
    seed: int = typer.Option(0, help="Seed of the mutations."),
    device: str = typer.Option("cpu", help="Device for learned methods."),
    plugin: list[str] = Plugins,
) -> None:
    """Decode truncated, bit-flipped and spliced streams: each must be refused or decoded."""
    load_plugins(plugin)
    from baselines.method import check_names
    from benchmarks.datasets import check_dataset

    check_names([codec])
    check_dataset(dataset, data_dir)
    from benchmarks.evaluation.fuzz import fuzz_spec

    found = fuzz_spec(
        codec, dataset, data_dir=data_dir, limit=limit, n=streams, seed=seed, device=device
    )
    for (kind, crc, outcome), count in sorted(found.counts.items()):
        typer.echo(f"{kind:12} {crc:10} {outcome:9} {count:5d}")
    typer.echo(f"{found.total} streams, slowest decode {found.slowest_s:.3f} s")
    for failure in found.failures[:10]:
        echo_err(f"failure: {failure}")
    if found.failures:
        raise typer.Exit(1)


@app.command()
def report(
    runs: list[Path] = typer.Argument(..., help="Run folders (or results files) to combine."),
    out: Path | None = typer.Option(None, help="Where to write (default: the first run)."),
    anchor: str | None = typer.Option(None, help="Anchor method for BD-rate (default jpeg)."),
    latex: bool = typer.Option(False, help="Also write report.tex."),
    html: bool = typer.Option(False, help="Also write report.html, figures embedded."),
    entropy: float | None = typer.Option(
        None, help="The data's entropy in nats per image, where known: drawn as R = H - D."
    ),
    unverified: bool = typer.Option(
        False, help="Render tables without checksums (results.sha256), marked unverified."
    ),
) -> None:
    """Re-render tables and plots from stored results, combining several runs."""
    from benchmarks.results import load_runs, read_results

    frame = read_results(runs, unverified_ok=unverified)  # read (and refused) before seaborn loads
    from benchmarks.report import render_report

    for file in frame.attrs.get("unverified", []):
        echo_err(f"warning: {file} has no checksums; the report says it is unverified")
    target = out or run_folder(runs[0])
    files = render_report(
        frame, target, runs=load_runs(runs), anchor=anchor, latex=latex, html=html,
        folders=[r for r in runs if r.is_dir()], entropy=entropy,
    )  # fmt: skip
    typer.echo(f"{len(frame)} rows from {len(runs)} run(s) -> {files[0]}")
