"""Commands of the studies: ``rd-theory`` (the paper-style ``compare`` is in sweeps)."""

from __future__ import annotations

from pathlib import Path

import typer

from benchmarks.cli.app import app, echo_err


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
    from benchmarks.studies.rd_experiments import run

    tables = run(out, data_dir=data_dir, beta_sweep=beta_sweep, overwrite=overwrite,
                 echo=echo_err)  # fmt: skip
    worst = tables["ba_check"].groupby("source")["abs_error_nats"].max()
    typer.echo(f"Blahut–Arimoto, largest |R_BA - R_closed form| [nats]:\n{worst.to_string()}")
    for name in ("mutual_info_beta_sweep", "mutual_info_zoo"):
        if name in tables:
            typer.echo(f"{name}:\n{tables[name].round(3).to_string(index=False)}")
    typer.echo(f"-> {out}")
