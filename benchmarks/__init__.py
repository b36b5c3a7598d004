"""The vlae-bench suite: datasets, metrics, sweeps, results store, reports and the CLI."""

__version__ = "0.1.0"
