"""Commands of the datasets: ``data list``."""

from __future__ import annotations

from pathlib import Path

import typer

from benchmarks.cli.app import DataDir, data_app


@data_app.command("list")
def data_list(
    data_dir: Path | None = DataDir,
    verify: bool = typer.Option(True, help="Hash files against their published checksums."),
) -> None:
    """Show each dataset, where it was found, and whether its checksum verified."""
    from benchmarks import datasets

    typer.echo(datasets.dataset_status(data_dir, verify=verify).to_markdown(index=False))
