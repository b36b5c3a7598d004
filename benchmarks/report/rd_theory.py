"""The report's rate–distortion section: the trained points of the R(D) experiments
(:mod:`benchmarks.studies.rd_experiments`) against their bounds
(:mod:`benchmarks.analysis.rd_bounds`), and the Blahut–Arimoto check figure."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from benchmarks.analysis import rd_bounds
from benchmarks.report.plots import plt, sns


def _axes(title: str, xlabel: str):

    sns.set_theme(style="whitegrid", context="notebook")
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    ax.set(title=title, xlabel=xlabel, ylabel="rate [nats per vector]")
    return fig, ax


def _points(ax, table: pd.DataFrame) -> None:
    ax.plot(table["distortion"], table["rate_nats"], "o", color="tab:red", label="β-VAE (KL)")
    labels: dict[tuple[float, float], list] = {}  # points that coincide share one label
    spans = [max(float(table[c].abs().max()), 1e-12) for c in ("distortion", "rate_nats")]
    for row in table.itertuples():
        key = (round(row.distortion / spans[0], 2), round(row.rate_nats / spans[1], 2))
        labels.setdefault(key, []).append((row.distortion, row.rate_nats, f"{row.beta:g}"))
    for points in labels.values():
        betas = ", ".join(b for _, _, b in points)
        ax.annotate(f"β={betas}", points[0][:2], textcoords="offset points", xytext=(6, 4),
                    fontsize=8)  # fmt: skip


def gaussian_figure(table: pd.DataFrame, path: Path) -> None:
    variances = rd_bounds.GAUSSIAN_VARIANCES
    low = min(table["distortion"].min(), table["optimal_distortion"].min())
    grid = np.geomspace(low * 0.6, sum(variances), 300)
    title = f"Gaussian source, variances {variances[0]:g}…{variances[-1]:g}: linear VAE"
    fig, ax = _axes(title, "distortion D [total squared error]")
    ax.plot(grid, [rd_bounds.gaussian_rd(variances, d) for d in grid], "--", color="black",
            label="R(D), reverse water-filling")  # fmt: skip
    ax.plot(table["optimal_distortion"], table["optimal_rate_nats"], "o", mfc="none",
            color="black", label="optimum at each β (θ = β)")  # fmt: skip
    _points(ax, table)
    ax.set_xscale("log")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=150)


def bernoulli_figure(table: pd.DataFrame, curve: pd.DataFrame, path: Path) -> None:
    bits, p = rd_bounds.BERNOULLI_BITS, rd_bounds.BERNOULLI_P
    fig, ax = _axes(f"{bits} i.i.d. Bernoulli({p:g}) bits: MLP VAE", "bit error rate D")
    d = np.linspace(1e-4, 0.25, 300)
    ax.plot(d, [bits * rd_bounds.bernoulli_rd(p, x) for x in d], "--", color="black",
            label=f"{bits}·(h(p) − h(D))")  # fmt: skip
    ax.plot(curve["distortion"], bits * curve["rate_ba_nats"], "x", color="tab:blue", ms=4,
            label="Blahut–Arimoto")  # fmt: skip
    _points(ax, table)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=150)


def is_rd_theory(frame: pd.DataFrame) -> pd.Series:
    """Rows of rate–distortion experiments (they carry the bound they are checked against)."""
    return (
        frame["bound_nats"].notna()
        if "bound_nats" in frame
        else pd.Series(False, index=frame.index)
    )


SECTION_COLUMNS = {
    "beta": "β", "distortion": "D", "rate_nats": "R = KL [nats]", "bound_nats": "R(D) [nats]",
    "gap_nats": "gap R − R(D) [nats]", "optimal_distortion": "D at the optimum",
    "steps": "steps", "test_size": "held-out vectors",
}  # fmt: skip


def rd_theory_section(rows: pd.DataFrame, out_dir: Path) -> tuple[list[str], list[Path]]:
    """A table and a figure per synthetic source: the trained points against R(D)."""
    if rows.empty:
        return [], []
    md, files = ["", "## Rate–distortion theory: trained points against R(D)", ""], []
    for dataset, group in rows.groupby("dataset"):
        table = group.sort_values("value").assign(beta=lambda g: g["value"])
        measure = table["distortion_measure"].iloc[0]
        path = out_dir / f"rd_theory_{dataset}.png"
        if dataset.startswith("gaussian"):
            gaussian_figure(table, path)
        else:
            bernoulli_figure(table, rd_bounds.bernoulli_curve(), path)
        files.append(path)
        shown = table[[c for c in SECTION_COLUMNS if c in table]].dropna(axis=1, how="all")
        shown = shown.astype({c: int for c in ("steps", "test_size") if c in shown}).astype(
            {c: str for c in ("steps", "test_size") if c in shown}
        )  # counts, not floats
        shown = shown.rename(columns=SECTION_COLUMNS)
        md += [f"### {dataset} (D = {measure})", "", f"![{dataset}]({path.name})", "",
               shown.to_markdown(index=False, floatfmt=".4g"), ""]  # fmt: skip
    return md, files


def ba_figure(checks: pd.DataFrame, path: Path) -> None:
    """Blahut–Arimoto points (markers) on the closed forms (lines) they must reproduce."""

    fig, ax = _axes("Blahut–Arimoto against closed forms (Hamming distortion)", "distortion D")
    ax.set_ylabel("rate [nats per symbol]")
    groups = list(checks.groupby("source"))
    for (source, group), color in zip(groups, sns.color_palette("tab10", len(groups)), strict=True):
        group = group.sort_values("distortion")
        ax.plot(group["distortion"], group["rate_closed_form_nats"], "-", color=color, lw=1,
                label=f"{source}: closed form")  # fmt: skip
        ax.plot(group["distortion"], group["rate_ba_nats"], "o", color=color, ms=3, mfc="none")
    ax.plot([], [], "o", color="gray", mfc="none", ms=3, label="Blahut–Arimoto")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=150)
