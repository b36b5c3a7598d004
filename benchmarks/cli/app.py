"""The typer app, the options every command shares, and how the CLI meets plugins.

Commands import the library inside their bodies, so that ``vlae-bench --help`` (and an
error in an option) answers without loading torch, pandas or seaborn.
"""

from __future__ import annotations

import os
from pathlib import Path

import typer

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
Plugins = typer.Option(
    [], "--plugin", metavar="MODULE|FILE",
    help="A module (pkg.module) or .py file registering your own models, methods or metrics "
    "(also $VLAE_BENCH_PLUGINS, comma-separated). Repeatable.",
)  # fmt: skip
PLUGINS_ENV = "VLAE_BENCH_PLUGINS"
WeightsDir = typer.Option(
    None, "--weights-dir",
    help="Folder of the perceptual metrics' weights (else $VLAE_BENCH_WEIGHTS; docs/metrics.md).",
)  # fmt: skip


@app.callback()
def plugins_for_every_command(
    plugin: list[str] = Plugins, weights_dir: Path | None = WeightsDir
) -> None:
    """Benchmark lossy latent-variable image models against classical and learned codecs.

    `--plugin` before a command (`vlae-bench --plugin my_codecs.py report ...`) loads the
    plugin for any command; commands that look names up also take it after their name."""
    load_plugins(plugin)


def echo_err(text: str) -> None:
    typer.echo(text, err=True)


def load_plugins(given: list[str]) -> None:
    """Import the plugins named on the command line and in ``$VLAE_BENCH_PLUGINS``; worker
    processes import them again (they travel as references, not objects)."""
    from vlae_models.registry import load_plugin

    from_env = [p.strip() for p in os.environ.get(PLUGINS_ENV, "").split(",") if p.strip()]
    for ref in [*from_env, *given]:
        load_plugin(ref)


def use_weights_dir(folder: Path | None) -> None:
    """Name the weights folder for this process and the workers it starts (they inherit
    the environment)."""
    from benchmarks.metrics.weights import WEIGHTS_ENV

    if folder is not None:
        os.environ[WEIGHTS_ENV] = str(folder.expanduser().resolve())


def run_folder(path: Path) -> Path:
    return path if path.is_dir() else path.parent
