"""Commands of speed: ``throughput`` and ``perf-gate``."""

from __future__ import annotations

from pathlib import Path

import typer

from benchmarks.cli.app import DataDir, Plugins, app, load_plugins


@app.command()
def throughput(
    targets: list[str] = typer.Argument(
        ..., help="Model names, checkpoints, zoo:NAME, or methods (jpeg=50, NET:CHECKPOINT)."
    ),
    out: Path = typer.Option(..., help="Run folder: the throughput rows, report and plot."),
    device: str = typer.Option("cpu", help="cpu, cuda, cuda:1, ..."),
    batch_size: str = typer.Option("1,8,64", help="Batch sizes, a comma list."),
    dtype: str = typer.Option("fp32", help="fp32, bf16 or fp16 (autocast of the network)."),
    compile: bool = typer.Option(False, help="torch.compile the model's networks first."),
    channels_last: bool = typer.Option(False, help="Channels-last memory format."),
    repeats: int = typer.Option(10, min=1, help="Timed calls per phase (after a warm-up)."),
    warmup: int = typer.Option(2, min=0, help="Untimed calls first."),
    phase: list[str] = typer.Option(
        [], "--phase", help="Only these phases (train_step, forward, encode, decode, sample)."
    ),
    threads: int | None = typer.Option(None, min=1, help="Torch CPU threads (default: torch's)."),
    data_dir: Path | None = DataDir,
    dataset: str | None = typer.Option(
        None, help="Images for codecs (default: a checkpoint codec's data, else Kodak)."
    ),
    overwrite: bool = typer.Option(False, help="Replace another measurement in --out."),
    plugin: list[str] = Plugins,
) -> None:
    """Time each phase (training step, forward, encode, decode, sampling) of models and codecs:
    images/s, pixels/s, p50/p95 latency, peak memory, entropy-coding share."""
    load_plugins(plugin)
    import torch

    from benchmarks.report import render_report
    from benchmarks.results import load_runs
    from benchmarks.speed.throughput import PHASES, parse_batch_sizes, throughput_to

    if threads:
        torch.set_num_threads(threads)
    store = throughput_to(
        out, targets, device=device, overwrite=overwrite, echo=typer.echo,
        batch_sizes=parse_batch_sizes(batch_size), dtype=dtype, compile=compile,
        channels_last=channels_last, repeats=repeats, warmup=warmup,
        phases=tuple(phase) or PHASES, data_dir=data_dir, dataset=dataset,
    )  # fmt: skip
    render_report(store.frame(), out, runs=load_runs([out]), html=True)
    typer.echo(f"{len(store.rows)} row(s) -> {out}")


@app.command("perf-gate")
def perf_gate(
    baseline: Path = typer.Argument(..., help="pytest-benchmark JSON of the baseline run."),
    current: Path = typer.Argument(..., help="pytest-benchmark JSON of the run to check."),
    threshold: float = typer.Option(
        0.3, min=0.0, help="Largest allowed slowdown of a ratio (0.3 = 30 %)."
    ),
) -> None:
    """Fail when a benchmark got slower against the reference workload timed in its own run
    (machine-independent: each median divided by test_reference_workload's)."""
    from benchmarks.speed.perf_gate import compare

    table = compare(baseline, current, threshold)
    typer.echo(table.to_markdown(index=False, floatfmt=".3f"))
    failed = table[~table["passes"]]
    if len(failed):
        typer.echo(f"{len(failed)} benchmark(s) slower than {threshold:.0%}: "
                   + ", ".join(failed["benchmark"]))  # fmt: skip
        raise typer.Exit(1)
    typer.echo(f"all {len(table)} benchmarks within {threshold:.0%} of the baseline")
