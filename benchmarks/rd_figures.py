"""Figures of :mod:`benchmarks.rd_experiments`: R(D) bounds with the trained points."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from benchmarks import rd_experiments, rd_theory


def _axes(title: str, xlabel: str):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import seaborn as sns

    sns.set_theme(style="whitegrid", context="notebook")
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    ax.set(title=title, xlabel=xlabel, ylabel="rate [nats per vector]")
    return fig, ax


def _points(ax, table: pd.DataFrame) -> None:
    ax.plot(table["distortion"], table["rate_nats"], "o", color="tab:red", label="β-VAE (KL)")
    for row in table.itertuples():
        ax.annotate(f"β={row.beta:g}", (row.distortion, row.rate_nats), textcoords="offset points",
                    xytext=(6, 4), fontsize=8)  # fmt: skip


def gaussian_figure(table: pd.DataFrame, path: Path) -> None:
    variances = rd_experiments.GAUSSIAN_VARIANCES
    grid = np.geomspace(table["distortion"].min() * 0.6, sum(variances), 300)
    title = f"Gaussian source, variances {variances[0]:g}…{variances[-1]:g}: linear VAE"
    fig, ax = _axes(title, "distortion D [total squared error]")
    ax.plot(grid, [rd_theory.gaussian_rd(variances, d) for d in grid], "--", color="black",
            label="R(D), reverse water-filling")  # fmt: skip
    ax.plot(table["optimal_distortion"], table["optimal_rate_nats"], "o", mfc="none",
            color="black", label="optimum at each β (θ = β)")  # fmt: skip
    _points(ax, table)
    ax.set_xscale("log")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=150)


def bernoulli_figure(table: pd.DataFrame, curve: pd.DataFrame, path: Path) -> None:
    bits, p = rd_experiments.BERNOULLI_BITS, rd_experiments.BERNOULLI_P
    fig, ax = _axes(f"{bits} i.i.d. Bernoulli({p:g}) bits: MLP VAE", "bit error rate D")
    d = np.linspace(1e-4, 0.25, 300)
    ax.plot(d, [bits * rd_theory.bernoulli_rd(p, x) for x in d], "--", color="black",
            label=f"{bits}·(h(p) − h(D))")  # fmt: skip
    ax.plot(curve["distortion"], bits * curve["rate_ba_nats"], "x", color="tab:blue", ms=4,
            label="Blahut–Arimoto")  # fmt: skip
    _points(ax, table)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=150)
