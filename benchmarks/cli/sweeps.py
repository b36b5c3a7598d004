"""Commands of specs and sweeps: ``sweep``, ``demo`` and ``compare``."""

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
    use_weights_dir,
)

SUMMARY_COLUMNS = ["arm", "β/λ/q", "rate kind", "estimator", "seeds", "bpp", "NLL [nats]",
                   "PSNR [dB]", "MS-SSIM [dB]", "NLL sd", "PSNR sd", "images"]  # fmt: skip
DEMO_SPEC = Path(__file__).resolve().parents[1] / "specs" / "demo.toml"


@app.command()
def sweep(
    spec: Path = typer.Argument(..., help="Spec, e.g. benchmarks/specs/beta_sweep_mnist.toml."),
    out: Path = typer.Option(..., help="Sweep folder: one folder per job, the table, report."),
    profile: str | None = typer.Option(None, help="Budget profile of the spec (smoke, cpu...)."),
    jobs: int = typer.Option(1, "--jobs", "-j", min=1, help="Jobs run at once."),
    threads: int = typer.Option(1, min=1, help="Torch threads per job."),
    launcher: str = typer.Option("local", help="local (worker processes) or submitit."),
    cluster_param: list[str] = typer.Option(
        [],
        "--cluster-param",
        help="submitit parameter KEY=VALUE (slurm_partition=gpu, "
        "timeout_min=240, gpus_per_node=1, cluster=local...). Repeatable.",
    ),  # fmt: skip
    only: list[str] = typer.Option([], "--only", help="Run only this arm. Repeatable."),
    dry_run: bool = typer.Option(False, "--dry-run", help="List the jobs and their state."),
    data_dir: Path | None = DataDir,
    device: str = typer.Option("cpu", help="Device for training and evaluation."),
    compile: bool = typer.Option(
        False, help="torch.compile the models for the likelihood passes (faster IWAE)."
    ),
    anchor: str | None = typer.Option(None, help="Anchor arm for BD-rate (default jpeg)."),
    plugin: list[str] = Plugins,
    weights_dir: Path | None = WeightsDir,
) -> None:
    """Run a spec's jobs (train, evaluate, collect, report); rerunning resumes."""
    load_plugins(plugin)
    use_weights_dir(weights_dir)
    from benchmarks.datasets import data_root_candidates
    from benchmarks.runs.spec_file import read_spec_file

    read_spec_file(spec)  # a missing or malformed spec is refused before torch loads
    data_root_candidates(data_dir)
    from benchmarks.runs.runtime import Runtime

    if dry_run:
        from benchmarks.report import markdown_table
        from benchmarks.runs.spec import expand, load_spec
        from benchmarks.runs.sweep import describe

        expanded = expand(load_spec(spec), profile, only or None)
        typer.echo(markdown_table(describe(expanded, out)))
        return
    runtime = Runtime(data_dir=data_dir, device=device, threads=threads, compile=compile)
    run_spec(spec, out, profile=profile, only=only, launcher=launcher, jobs=jobs,
             runtime=runtime, cluster_params=_key_values(cluster_param), anchor=anchor)  # fmt: skip


def run_spec(spec: Path, out: Path, *, jobs: int, anchor: str | None = None, **options) -> None:
    """Run a spec through the library and print its summary; exit 1 if a job failed."""
    from benchmarks.runs.sweep import sweep_to

    start = time.perf_counter()
    done = sweep_to(spec, out, workers=jobs, anchor=anchor, echo=echo_err, **options)
    if not done.table.empty:
        table = done.table
        shown = [c for c in SUMMARY_COLUMNS if c in table and table[c].notna().any()]
        typer.echo(table[shown].to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    typer.echo(f"{len(done.jobs)} jobs, {time.perf_counter() - start:.0f} s -> {done.files[0]}")
    if done.summary.elsewhere:
        others = ", ".join(done.summary.elsewhere)
        echo_err(f"still run by another process: {others}; rerun when they end to collect them")
    if done.summary.failed:
        echo_err(f"{len(done.summary.failed)} job(s) failed: {', '.join(done.summary.failed)} "
                 "(each folder's job.json and error.txt say why; rerun to retry them)")  # fmt: skip
        raise typer.Exit(1)


def _key_values(pairs: list[str]) -> dict[str, object]:
    import json

    parsed = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise typer.BadParameter(f"{pair!r}: write KEY=VALUE")
        try:
            parsed[key] = json.loads(value)
        except ValueError:
            parsed[key] = value
    return parsed


@app.command()
def demo(
    out: Path = typer.Option(Path("vlae-bench-demo"), help="Folder for the demo's results."),
    jobs: int | None = typer.Option(None, "--jobs", "-j", min=1, help="Jobs at once (cores)."),
) -> None:
    """Offline demo (benchmarks/specs/demo.toml): zoo models, a learned codec and classical
    codecs on the photos shipped inside scikit-image/scikit-learn; one table, one report."""
    from benchmarks.evaluation.workers import default_workers

    run_spec(DEMO_SPEC, out, jobs=jobs or default_workers(), anchor="jpeg")
    typer.echo(f"open {out / 'report.html'} (or report.md)")


@app.command()
def compare(
    spec: Path = typer.Argument(..., help="Spec, e.g. benchmarks/specs/vlae_mnist.toml."),
    results: Path = typer.Option(..., help="Folder holding <arm>-s<seed>/ evaluation folders."),
    dataset: str = typer.Option(..., help="Dataset the arms were evaluated on."),
    out: Path | None = typer.Option(None, help="Where to write (default: --results)."),
    plugin: list[str] = Plugins,
) -> None:
    """Put each arm's measured NLL and KL beside the paper's and check expected orderings."""
    load_plugins(plugin)
    from benchmarks.studies.comparison import write_comparison

    files = write_comparison(spec, results, dataset, out or results)
    typer.echo(f"-> {files[0]}")
