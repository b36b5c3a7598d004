"""The ``vlae-bench`` command line: thin wrappers over the library.

Errors caused by input (missing data, bad options, corrupt files) are printed as one line
and exit with status 2; set VLAE_BENCH_DEBUG=1 to see the traceback instead.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import typer

from baselines.codec import CodecError, all_codecs
from benchmarks import datasets
from benchmarks.commands import models as models_commands
from benchmarks.errors import BenchError
from benchmarks.report import load_runs, render_report
from benchmarks.results import PARQUET, make_frame, read_results, recorded_run, write_results
from benchmarks.run_codecs import default_workers, plan_sweeps, run_codecs
from vlae_models.core import ModelError

app = typer.Typer(
    help="Benchmark lossy latent-variable image models against classical and learned codecs.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
data_app = typer.Typer(help="Datasets: where they are found and whether they verify.")
app.add_typer(data_app, name="data")

USER_ERRORS = (BenchError, CodecError, ModelError, FileNotFoundError)
DataDir = typer.Option(None, "--data-dir", help="Dataset root (else $VLAE_BENCH_DATA, cache).")
DEMO_CODECS = ["jpeg", "webp", "avif", "jxl", "jpeg2000", "png"]


@data_app.command("list")
def data_list(
    data_dir: Path | None = DataDir,
    verify: bool = typer.Option(True, help="Hash files against their published checksums."),
) -> None:
    """Show each dataset, where it was found, and whether its checksum verified."""
    table = datasets.dataset_status(data_dir, verify=verify)
    typer.echo(table.to_markdown(index=False))


def _codec_listing() -> str:
    lines = []
    for cls in all_codecs():
        p = cls.param
        state = cls.unavailable_reason() or "available"
        kind = "lossless" if cls.lossless else "lossy"
        lines.append(
            f"{cls.name:9} {kind:8} {p.name}={p.low:g}..{p.high:g} (default {p.default:g})  "
            f"{cls.description}  [{state}]"
        )
    return "\n".join(lines)


def evaluate_codecs_to(
    out: Path,
    dataset: str,
    codec_specs: list[str],
    quality: str | None,
    data_dir: Path | None,
    limit: int | None,
    workers: int | None,
    overwrite: bool,
    anchor: str | None,
    latex: bool,
) -> None:
    """Run a codec sweep into ``out``, keeping finished rows even if interrupted."""
    sweeps, notes = plan_sweeps(codec_specs, quality)
    for note in notes:
        typer.echo(f"note: {note}", err=True)
    images = datasets.load_images(dataset, data_dir=data_dir, limit=limit)
    out.mkdir(parents=True, exist_ok=True)
    rows: list[dict] = []
    if (out / PARQUET).exists() and not overwrite:
        previous = read_results([out])
        if set(previous["dataset"].dropna()) - {dataset}:
            raise BenchError(f"{out} holds results for another dataset; use another --out")
        rows = previous.to_dict("records")
        typer.echo(f"resuming: {len(rows)} rows already in {out / PARQUET}", err=True)
    done = {(r["method"], float(r["value"]), r["image"]) for r in rows}
    details = {"dataset": dataset, "codecs": codec_specs, "quality": quality}
    start, last_write = time.perf_counter(), 0.0
    with recorded_run(out, "codecs", **details) as run:
        try:
            for new_rows in run_codecs(
                images, sweeps, dataset=dataset, run_id=run["run_id"], versions=run["versions"],
                workers=workers, skip=done,
            ):  # fmt: skip
                rows.extend(new_rows)
                if time.perf_counter() - last_write > 2.0:  # an interrupt then loses little
                    write_results(make_frame(rows), out)
                    last_write = time.perf_counter()
        except KeyboardInterrupt:
            typer.echo(f"interrupted: {len(rows)} rows kept in {out}; rerun to resume", err=True)
            raise
        finally:
            if rows:
                write_results(make_frame(rows), out)
            run["rows"] = len(rows)
    frame = make_frame(rows)
    render_report(frame, out, runs=load_runs([out]), anchor=anchor, latex=latex)
    typer.echo(f"{len(frame)} rows, {time.perf_counter() - start:.1f} s -> {out}")


@app.command()
def codecs(
    dataset: str = typer.Option("kodak", help="kodak, embedded, folder:PATH, ..."),
    codec: list[str] = typer.Option(
        [], "--codec", "-c", help="Codec name, optionally NAME=START:STOP:STEP. Repeatable."
    ),
    quality: str | None = typer.Option(
        None, help="Quality sweep START:STOP:STEP or a comma list (codecs with a quality)."
    ),
    out: Path = typer.Option(Path("runs/codecs"), help="Run folder for results and report."),
    data_dir: Path | None = DataDir,
    limit: int | None = typer.Option(None, min=1, help="Use only the first N images."),
    workers: int | None = typer.Option(None, min=1, help="Processes (default: all cores)."),
    overwrite: bool = typer.Option(False, help="Start afresh instead of resuming in --out."),
    anchor: str | None = typer.Option(None, help="Anchor codec for BD-rate (default jpeg)."),
    latex: bool = typer.Option(False, help="Also write report.tex."),
    list_codecs: bool = typer.Option(False, "--list", help="List codecs and exit."),
) -> None:
    """Evaluate classical codecs on a dataset: table, report and RD plots in --out."""
    if list_codecs:
        typer.echo(_codec_listing())
        return
    evaluate_codecs_to(
        out, dataset, codec, quality, data_dir, limit, workers, overwrite, anchor, latex
    )


@app.command()
def report(
    runs: list[Path] = typer.Argument(..., help="Run folders (or results files) to combine."),
    out: Path | None = typer.Option(None, help="Where to write (default: the first run)."),
    anchor: str | None = typer.Option(None, help="Anchor codec for BD-rate (default jpeg)."),
    latex: bool = typer.Option(False, help="Also write report.tex."),
) -> None:
    """Re-render tables and plots from stored results, combining several runs."""
    frame = read_results(runs)
    target = out or (runs[0] if runs[0].is_dir() else runs[0].parent)
    files = render_report(frame, target, runs=load_runs(runs), anchor=anchor, latex=latex)
    typer.echo(f"{len(frame)} rows from {len(runs)} run(s) -> {files[0]}")


@app.command()
def compare(
    spec: Path = typer.Argument(..., help="Spec, e.g. benchmarks/specs/vlae_mnist.toml."),
    results: Path = typer.Option(..., help="Folder holding <arm>-s<seed>/ evaluation folders."),
    dataset: str = typer.Option(..., help="Dataset the arms were evaluated on."),
    out: Path | None = typer.Option(None, help="Where to write (default: --results)."),
) -> None:
    """Put each arm's measured NLL and KL beside the paper's and check expected orderings."""
    from benchmarks.comparison import write_comparison

    files = write_comparison(spec, results, dataset, out or results)
    typer.echo(f"-> {files[0]}")


@app.command()
def demo(
    out: Path = typer.Option(Path("vlae-bench-demo"), help="Run folder for the demo."),
    workers: int | None = typer.Option(None, min=1, help="Processes (default: all cores)."),
) -> None:
    """Offline demo: classical codecs on the photos shipped inside scikit-image/scikit-learn."""
    available = [
        c.name for c in all_codecs() if c.name in DEMO_CODECS and not c.unavailable_reason()
    ]
    missing = sorted(set(DEMO_CODECS) - set(available))
    if missing:
        typer.echo(f"note: unavailable here, not run: {', '.join(missing)}", err=True)
    evaluate_codecs_to(
        out, "embedded", available, None, None, None, workers or default_workers(),
        overwrite=True, anchor="jpeg", latex=False,
    )  # fmt: skip
    typer.echo(f"open {out / 'report.md'}")


models_commands.register(app)  # `models`, `train`, `eval` live beside the model code


def main() -> None:
    try:
        app()  # typer turns Ctrl-C into exit status 130 itself
    except USER_ERRORS as err:
        if os.environ.get("VLAE_BENCH_DEBUG") == "1":
            raise
        typer.echo(f"error: {err}", err=True)
        sys.exit(2)


if __name__ == "__main__":
    main()
