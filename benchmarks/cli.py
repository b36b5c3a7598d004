"""The ``vlae-bench`` command line. It parses options and prints; the work is in the library
(:mod:`benchmarks.evaluation`, :mod:`benchmarks.model_runs`, :mod:`benchmarks.report`, ...),
which is imported inside each command so that ``--help`` answers at once.

Errors caused by input (missing data, bad options, corrupt files) are printed as one line
and exit with status 2; set VLAE_BENCH_DEBUG=1 to see the traceback instead.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import typer
from typer.exceptions import Abort, Exit, TyperException

app = typer.Typer(
    help="Benchmark lossy latent-variable image models against classical and learned codecs.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    rich_markup_mode=None,
)
data_app = typer.Typer(help="Datasets: where they are found and whether they verify.")
app.add_typer(data_app, name="data")
zoo_app = typer.Typer(help="The offline zoo of reference weights (results/zoo).")
app.add_typer(zoo_app, name="zoo")

DataDir = typer.Option(None, "--data-dir", help="Dataset root (else $VLAE_BENCH_DATA, cache).")


def echo_err(text: str) -> None:
    typer.echo(text, err=True)


@data_app.command("list")
def data_list(
    data_dir: Path | None = DataDir,
    verify: bool = typer.Option(True, help="Hash files against their published checksums."),
) -> None:
    """Show each dataset, where it was found, and whether its checksum verified."""
    from benchmarks import datasets

    typer.echo(datasets.dataset_status(data_dir, verify=verify).to_markdown(index=False))


@zoo_app.command("list")
def zoo_list() -> None:
    """Each reference checkpoint: its model, size, and the test numbers it reproduces."""
    from vlae_models.zoo import index, zoo_dir

    entries = index()
    if not entries:
        typer.echo(f"no zoo at {zoo_dir()}")
    for name, entry in entries.items():
        numbers = "; ".join(
            f"{key}: NLL {values['nll_nats']:.2f} nats" for key, values in
            entry.get("reference", {}).items() if "nll_nats" in values
        )  # fmt: skip
        typer.echo(f"{name:28} {entry['model']:9} {entry['bytes'] / 2**20:5.1f} MB  {numbers}")


@zoo_app.command("export")
def zoo_export(
    run: Path = typer.Argument(..., help="A training run folder (checkpoint and run.json)."),
    name: str = typer.Argument(..., help="Zoo name, e.g. vlae-binarized-mnist."),
    fp16: bool = typer.Option(False, help="Store the weights in half precision (half size)."),
) -> None:
    """Export a run's EMA weights, configs and provenance as a weights-only zoo checkpoint."""
    from benchmarks.model_runs import export_to_zoo

    typer.echo(f"-> {export_to_zoo(run, name, fp16=fp16)}")


@zoo_app.command("reference")
def zoo_reference(
    name: str = typer.Argument(..., help="Zoo name."),
    evaluation: list[Path] = typer.Argument(..., help="`vlae-bench eval` folders of NAME."),
) -> None:
    """Record the test numbers that evaluations of a zoo checkpoint measured, in its index."""
    from benchmarks.model_runs import record_reference

    typer.echo(record_reference(name, evaluation))


def method_listing() -> str:
    from baselines.method import METHODS

    lines = []
    for name, cls in METHODS.items():
        p = cls.param
        state = cls.unavailable_reason() or "available"
        kind = "lossless" if cls.lossless else "/".join(cls.rate_kinds)
        lines.append(
            f"{name:9} {kind:14} {p.name}={p.low:g}..{p.high:g} (default {p.default:g})  "
            f"{cls.description}  [{state}]"
        )
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
    list_codecs: bool = typer.Option(False, "--list", help="List methods and exit."),
) -> None:
    """Evaluate codecs and model checkpoints on one dataset: one table, report and RD plots."""
    if list_codecs:
        typer.echo(method_listing())
        return
    from benchmarks.evaluation import evaluate_to
    from benchmarks.report import render_report
    from benchmarks.runs import load_runs

    start = time.perf_counter()
    store = evaluate_to(
        out, dataset, codec, quality=quality, split=split, data_dir=data_dir, limit=limit,
        workers=workers, device=device, overwrite=overwrite, echo=echo_err,
    )  # fmt: skip
    frame = store.frame()
    render_report(frame, out, runs=load_runs([out]), anchor=anchor, latex=latex)
    typer.echo(f"{len(frame)} rows, {time.perf_counter() - start:.1f} s -> {out}")


@app.command()
def fuzz(
    codec: str = typer.Option(..., "--codec", "-c", help="One method setting: jpeg=50, ARCH:CKPT."),
    dataset: str = typer.Option("kodak:crop=128", help="Images whose streams are mutated."),
    data_dir: Path | None = DataDir,
    limit: int = typer.Option(2, min=1, help="Images to encode."),
    streams: int = typer.Option(600, min=1, help="Mutated streams to decode."),
    seed: int = typer.Option(0, help="Seed of the mutations."),
    device: str = typer.Option("cpu", help="Device for learned methods."),
) -> None:
    """Decode truncated, bit-flipped and spliced streams: each must be refused or decoded."""
    from benchmarks.robustness import fuzz_spec

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
) -> None:
    """Re-render tables and plots from stored results, combining several runs."""
    from benchmarks.report import render_report
    from benchmarks.results import read_results
    from benchmarks.runs import load_runs

    frame = read_results(runs)
    target = out or (runs[0] if runs[0].is_dir() else runs[0].parent)
    files = render_report(
        frame, target, runs=load_runs(runs), anchor=anchor, latex=latex, html=html,
        folders=[r for r in runs if r.is_dir()], entropy=entropy,
    )  # fmt: skip
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
) -> None:
    """Run a spec's jobs (train, evaluate, collect, report); rerunning resumes."""
    from benchmarks.report import markdown_table
    from benchmarks.spec import expand, load_spec
    from benchmarks.sweep import describe, finish_sweep, run_sweep

    loaded = load_spec(spec)
    expanded = expand(loaded, profile, only or None)
    if dry_run:
        typer.echo(markdown_table(describe(expanded, out)))
        return
    start = time.perf_counter()
    summary = run_sweep(
        expanded, out, launcher=launcher, workers=jobs, threads=threads, data_dir=data_dir,
        device=device, compile=compile, cluster_params=_key_values(cluster_param), echo=echo_err,
    )  # fmt: skip
    table, files = finish_sweep(loaded, expanded, out, anchor=anchor)
    if not table.empty:
        shown = [c for c in SUMMARY_COLUMNS if c in table and table[c].notna().any()]
        typer.echo(table[shown].to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    typer.echo(f"{len(expanded)} jobs, {time.perf_counter() - start:.0f} s -> {files[0]}")
    if summary.elsewhere:
        others = ", ".join(summary.elsewhere)
        echo_err(f"still run by another process: {others}; rerun when they end to collect them")
    if summary.failed:
        echo_err(f"{len(summary.failed)} job(s) failed: {', '.join(summary.failed)} (each "
                 "folder's job.json and error.txt say why; rerun to retry them)")  # fmt: skip
        raise typer.Exit(1)


SUMMARY_COLUMNS = ["arm", "β/λ/q", "rate kind", "estimator", "seeds", "bpp", "NLL [nats]",
                   "PSNR [dB]", "MS-SSIM [dB]", "NLL sd", "PSNR sd", "images"]  # fmt: skip


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
    from benchmarks.evaluation import default_workers

    spec = Path(__file__).parent / "specs" / "demo.toml"
    sweep(
        spec=spec, out=out, profile=None, jobs=jobs or default_workers(), threads=1,
        launcher="local", cluster_param=[], only=[], dry_run=False, data_dir=None,
        device="cpu", anchor="jpeg",
    )  # fmt: skip
    typer.echo(f"open {out / 'report.html'} (or report.md)")


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
    overwrite: bool = typer.Option(False, help="Replace another measurement in --out."),
) -> None:
    """Time each phase (training step, forward, encode, decode, sampling) of models and codecs:
    images/s, pixels/s, p50/p95 latency, peak memory, entropy-coding share."""
    import torch

    from benchmarks.report import render_report
    from benchmarks.runs import load_runs
    from benchmarks.throughput import PHASES, parse_batch_sizes, throughput_to

    if threads:
        torch.set_num_threads(threads)
    store = throughput_to(
        out, targets, device=device, overwrite=overwrite, echo=typer.echo,
        batch_sizes=parse_batch_sizes(batch_size), dtype=dtype, compile=compile,
        channels_last=channels_last, repeats=repeats, warmup=warmup,
        phases=tuple(phase) or PHASES, data_dir=data_dir,
    )  # fmt: skip
    render_report(store.frame(), out, runs=load_runs([out]), html=True)
    typer.echo(f"{len(store.rows)} row(s) -> {out}")


@app.command("rd-theory")
def rd_theory_command(
    out: Path = typer.Option(..., "--out", help="New folder for the tables and the figure."),
    beta_sweep: Path | None = typer.Option(
        None, help="A β-sweep run folder (results.csv) whose I(x;z) <= KL to check."
    ),
    data_dir: Path | None = typer.Option(None, help="Data root (default $VLAE_BENCH_DATA)."),
    overwrite: bool = typer.Option(False, help="Replace what --out holds."),
) -> None:
    """Rate–distortion checks that train nothing: Blahut–Arimoto against the closed forms,
    and I(x;z) <= KL with its bound pair. (The trained points: benchmarks/specs/rd_theory.toml.)"""
    from benchmarks.rd_experiments import run

    tables = run(out, data_dir=data_dir, beta_sweep=beta_sweep, overwrite=overwrite,
                 echo=echo_err)  # fmt: skip
    worst = tables["ba_check"].groupby("source")["abs_error_nats"].max()
    typer.echo(f"Blahut–Arimoto, largest |R_BA - R_closed form| [nats]:\n{worst.to_string()}")
    for name in ("mutual_info_beta_sweep", "mutual_info_zoo"):
        if name in tables:
            typer.echo(f"{name}:\n{tables[name].round(3).to_string(index=False)}")
    typer.echo(f"-> {out}")


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
    from benchmarks.perf_gate import compare

    table = compare(baseline, current, threshold)
    typer.echo(table.to_markdown(index=False, floatfmt=".3f"))
    failed = table[~table["passes"]]
    if len(failed):
        typer.echo(f"{len(failed)} benchmark(s) slower than {threshold:.0%}: "
                   + ", ".join(failed["benchmark"]))  # fmt: skip
        raise typer.Exit(1)
    typer.echo(f"all {len(table)} benchmarks within {threshold:.0%} of the baseline")


@app.command("models")
def models_command() -> None:
    """List the registered models, and every field `--set` accepts (model and training)."""
    from vlae_models.config import field_defaults
    from vlae_models.core import available_models
    from vlae_models.train import TrainConfig

    entries = available_models()
    width = max(len(entry.name) for entry in entries)
    for entry in entries:
        typer.echo(f"{entry.name:{width}} {entry.description}")
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
) -> None:
    """Train a model; re-running with the same --out resumes from its checkpoint."""
    from benchmarks.model_runs import train_config, train_to

    model_over, config = train_config(model, set_, beta=beta, steps=steps, epochs=epochs)
    ckpt = train_to(
        out, model, dataset, model_config=model_over, config=config, split=split,
        eval_split=eval_split, data_dir=data_dir, fresh=fresh,
    )  # fmt: skip
    typer.echo(f"checkpoint: {ckpt}")


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
) -> None:
    """Split-level likelihood statistics: ELBO, IWAE, KL per level, active units, I(x;z)."""
    from benchmarks.model_runs import eval_to
    from benchmarks.report import render_report
    from benchmarks.runs import load_runs

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


def user_errors() -> tuple[type[BaseException], ...]:
    """Exceptions that mean bad input, not a bug: printed as one line."""
    from baselines.method import MethodError
    from benchmarks.errors import BenchError
    from vlae_models.core import ModelError

    return (BenchError, MethodError, ModelError, FileNotFoundError, NotADirectoryError)


def main() -> None:
    import warnings

    # compressai's import scripts functions with torch.jit, which torch now deprecates: noise.
    warnings.filterwarnings("ignore", message="`torch.jit.script` is deprecated")
    try:
        code = app(standalone_mode=False)
    except Exit as stop:
        code = stop.exit_code
    except Abort:
        echo_err("interrupted")
        sys.exit(130)
    except TyperException as err:  # a bad option or value: one line, like other errors
        echo_err(f"error: {' '.join(err.format_message().split())}")
        sys.exit(2)
    except KeyboardInterrupt:
        sys.exit(130)
    except Exception as err:
        if os.environ.get("VLAE_BENCH_DEBUG") == "1" or not isinstance(err, user_errors()):
            raise
        echo_err(f"error: {' '.join(str(err).split())}")
        sys.exit(2)
    sys.exit(code if isinstance(code, int) else 0)


if __name__ == "__main__":
    main()
