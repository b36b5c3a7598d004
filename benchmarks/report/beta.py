"""β sweeps in the report: the rate–distortion plane, rate and distortion against β, I(x;z)
beside the KL, reconstruction grids, and the seed chapter's two figures, from real runs.

The rate–distortion plane follows Alemi et al. 2018 ("Fixing a Broken ELBO",
arXiv:1711.00464): distortion D = E[−log p(x|z)] across, rate R = E KL(q(z|x) ‖ p(z)) up,
both in nats per image, with iso-ELBO lines D + R = const (every point on one has the same
ELBO) and, where the data entropy H is known, the line R = H − D below which no model lies.

Points come from split-level evaluations (``image == "__all__"``, rate kind ``kl``, the ELBO
estimator where a run has it, else the pass it has), averaged over seeds; an arm is drawn as a
curve when it has two or more β values.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import matplotlib.image as mpimg
import numpy as np
import pandas as pd

from benchmarks.report.format import markdown_table
from benchmarks.report.plots import plt, save_figure, slug, sns
from benchmarks.results import ALL_IMAGES, aggregate


def beta_points(frame: pd.DataFrame) -> pd.DataFrame:
    """Per (dataset, arm, β): mean rate, distortion, −ELBO, I(x;z) over seeds, and how many
    images the evaluation (and so the I(x;z) estimator's log N ceiling) had."""
    rows = frame[(frame["image"] == ALL_IMAGES) & (frame["rate_kind"] == "kl")]
    if "estimator" in rows:
        full = rows["estimator"].isin(["elbo", "exact"])
        rows = rows[full] if full.any() else rows
    if rows.empty or rows["param"].dropna().ne("beta").any():
        return pd.DataFrame()
    columns = ["rate_nats", "distortion_nats", "neg_elbo_nats", "mutual_info_nats", "n_examples"]
    present = [c for c in columns if c in rows]
    numbers = rows[present].apply(pd.to_numeric, errors="coerce")
    keyed = pd.concat([rows[["dataset", "method", "value"]], numbers], axis=1)
    points = keyed.groupby(["dataset", "method", "value"], sort=True).mean().reset_index()
    points["seeds"] = rows.groupby(["dataset", "method", "value"], sort=True).size().to_numpy()
    points = points.rename(columns={"method": "arm", "value": "beta"})
    used = sorted(rows["estimator"].dropna().unique()) if "estimator" in rows else []
    points.attrs["estimator"] = "/".join(used) or "elbo"  # which pass the points came from
    return points


def swept(points: pd.DataFrame) -> pd.DataFrame:
    """The points of arms measured at two or more β values."""
    if points.empty:
        return points
    counts = points.groupby(["dataset", "arm"])["beta"].transform("nunique")
    return points[counts >= 2]


def recon_grids(folders: list[Path], dataset: str) -> dict[tuple[str, float], Path]:
    """{(arm, β): its evaluation's reconstruction grid} from sweep job folders (``job.json``
    beside a pass folder holding ``recon_*.png``); the first seed of each."""
    grids: dict[tuple[str, float], Path] = {}
    for root in folders:
        for job_json in sorted(Path(root).glob("**/job.json")):
            info = json.loads(job_json.read_text())
            beta = (info.get("point") or {}).get("beta")
            found = sorted(job_json.parent.glob("*/recon_*.png"))
            if info.get("dataset") != dataset or info.get("status") != "complete":
                continue
            if beta is not None and found:
                grids.setdefault((info["arm"], float(beta)), found[0])
    return grids


def chapter_bars(frame: pd.DataFrame, vlae_arm: str = "vlae") -> pd.DataFrame:
    """The chapter's bar chart, measured: mean coded bpp of JPEG (each quality), PNG and the
    VLAE at β = 0.1 and 1 on the same images, each with its rate kind and what it decodes to."""
    per_image = frame[frame["image"] != ALL_IMAGES]
    if per_image.empty:
        return pd.DataFrame()
    agg = aggregate(per_image)
    wanted = (agg["method"].isin(["jpeg", "png"])) | (
        (agg["method"] == vlae_arm) & agg["value"].isin([0.1, 1.0])
    )
    bars = agg[wanted & (agg["rate_kind"] == "coded")].copy()
    if bars.empty or not {vlae_arm, "png"} <= set(bars["method"]):
        return pd.DataFrame()
    bars["label"] = [_bar_label(r) for r in bars.to_dict("records")]
    error = bars["bit_error_rate"] if "bit_error_rate" in bars else pd.Series(np.nan, bars.index)
    bars["decodes"] = [
        _decodes(row, e) for row, e in zip(bars.to_dict("records"), error, strict=True)
    ]
    return bars[["label", "bpp", "rate_kind", "decodes", "n_images"]].reset_index(drop=True)


def _decodes(row: dict, bit_error_rate: float) -> str:
    if row["n_exact"] == row["n_images"] or bit_error_rate == 0:
        return "exact"
    if bit_error_rate == bit_error_rate:
        return f"bit error rate {bit_error_rate:.3f}"
    return f"PSNR {row['psnr']:.1f} dB"


def _bar_label(row: dict) -> str:
    if row["method"] == "png":
        return "PNG (lossless)"
    if row["method"] == "jpeg":
        return f"JPEG q={row['value']:g}"
    return f"VLAE β={row['value']:g} (z only)"


# --- figures -------------------------------------------------------------------------------


def rd_plane_figure(points: pd.DataFrame, title: str, entropy: float | None = None):

    sns.set_theme(style="whitegrid", context="notebook")
    fig, ax = plt.subplots(figsize=(7.5, 5.2), dpi=150)
    d, r = points["distortion_nats"], points["rate_nats"]
    span = max(float(d.max() - d.min()), float(r.max() - r.min()), 1.0)
    lo_d, hi_d = float(d.min()) - 0.08 * span, float(d.max()) + 0.08 * span
    lo_r, hi_r = max(0.0, float(r.min()) - 0.08 * span), float(r.max()) + 0.08 * span
    best = float((d + r).min())
    step = _nice_step(span / 4)
    levels = best + step * np.arange(0, 12)
    xs = np.linspace(lo_d, hi_d, 2)
    for i, level in enumerate(levels):
        ax.plot(xs, level - xs, color="0.6", lw=0.8, ls=":",
                label="iso-ELBO: D + R = const" if i == 0 else None)  # fmt: skip
    if entropy is not None:
        ax.plot(xs, entropy - xs, color="black", lw=1.2, label=f"R = H − D (H = {entropy:g})")
    palette = sns.color_palette("tab10", points["arm"].nunique())
    for colour, (arm, rows) in zip(palette, points.groupby("arm", sort=True), strict=True):
        rows = rows.sort_values("beta")
        ax.plot(rows["distortion_nats"], rows["rate_nats"], "-o", color=colour, ms=5, label=arm)
        for row in rows.itertuples():
            ax.annotate(f"β={row.beta:g}", (row.distortion_nats, row.rate_nats), fontsize=7,
                        xytext=(4, 3), textcoords="offset points", color=colour)  # fmt: skip
    ax.set_xlim(lo_d, hi_d)
    ax.set_ylim(lo_r, hi_r)
    ax.set_xlabel("distortion D = E[−log p(x|z)]  [nats per image]")
    ax.set_ylabel("rate R = E KL(q(z|x) ‖ p(z))  [nats per image]")
    ax.set_title(title)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False, fontsize=8)
    fig.tight_layout()
    return fig


def _nice_step(raw: float) -> float:
    """1, 2 or 5 times a power of ten, near ``raw``: iso-ELBO lines at round spacings."""
    power = 10.0 ** math.floor(math.log10(raw))
    return min((m * power for m in (1, 2, 5, 10)), key=lambda s: abs(s - raw))


def against_beta_figure(points: pd.DataFrame, title: str):

    sns.set_theme(style="whitegrid", context="notebook")
    fig, axes = plt.subplots(1, 2, figsize=(10, 4.2), dpi=150)
    panels = (("rate_nats", "rate (KL) [nats]"), ("distortion_nats", "distortion [nats]"))
    for ax, (column, name) in zip(axes, panels, strict=True):
        sns.lineplot(data=points, x="beta", y=column, hue="arm", marker="o", ax=ax)
        ax.set_xscale("log")
        ax.set_xlabel("β")
        ax.set_ylabel(name)
        ax.legend(title=None, fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def mutual_info_figure(points: pd.DataFrame, title: str):
    """KL (the rate) and the ELBO-surgery I(x;z) at each β, with the estimator's log N
    ceiling: I(x;z) ≤ KL must hold at every point."""

    arms = sorted(points["arm"].unique())
    sns.set_theme(style="whitegrid", context="notebook")
    fig, axes = plt.subplots(1, len(arms), figsize=(5 * len(arms), 4.2), dpi=150, squeeze=False)
    for ax, arm in zip(axes[0], arms, strict=True):
        rows = points[points["arm"] == arm].sort_values("beta")
        ax.plot(rows["beta"], rows["rate_nats"], "-o", label="KL = rate (bound)")
        ax.plot(rows["beta"], rows["mutual_info_nats"], "-s", label="I(x;z), ELBO surgery")
        ceiling = math.log(min(float(rows["n_examples"].max()), 10_000))
        ax.axhline(ceiling, color="0.4", ls="--", lw=1, label=f"log N = {ceiling:.2f}")
        ax.set_xscale("log")
        ax.set_xlabel("β")
        ax.set_ylabel("nats per image")
        ax.set_title(arm)
        ax.legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def recon_grid_figure(grids: dict[tuple[str, float], Path], title: str):
    """Each (arm, β)'s reconstruction grid (originals beside reconstructions), arms as rows."""

    arms = sorted({arm for arm, _ in grids})
    betas = sorted({beta for _, beta in grids})
    fig, axes = plt.subplots(len(arms), len(betas), squeeze=False, dpi=150,
                             figsize=(1.9 * len(betas) + 0.6, 2.0 * len(arms) + 0.6))  # fmt: skip
    for i, arm in enumerate(arms):
        for j, beta in enumerate(betas):
            ax = axes[i][j]
            ax.set_xticks([])
            ax.set_yticks([])
            if (arm, beta) in grids:
                ax.imshow(mpimg.imread(grids[(arm, beta)]), cmap="gray", interpolation="nearest")
            else:
                ax.set_axis_off()
            if i == 0:
                ax.set_title(f"β = {beta:g}", fontsize=9)
            if j == 0:
                ax.set_ylabel(arm, fontsize=9)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def chapter_rd_figure(points: pd.DataFrame, arm: str, title: str):
    """The chapter's rate/distortion-against-β chart: one arm's rate and distortion (nats,
    rate kind ``kl``) on two axes."""

    rows = points[points["arm"] == arm].sort_values("beta")
    sns.set_theme(style="whitegrid", context="notebook")
    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=150)
    colours = sns.color_palette("tab10", 2)
    ax.plot(rows["beta"], rows["rate_nats"], "-o", color=colours[0], label="rate: KL [nats]")
    ax.set_xscale("log")
    ax.set_xlabel("β")
    ax.set_ylabel("rate R = KL (kl bound) [nats]", color=colours[0])
    twin = ax.twinx()
    twin.plot(rows["beta"], rows["distortion_nats"], "-s", color=colours[1],
              label="distortion [nats]")  # fmt: skip
    twin.set_ylabel("distortion D = −log p(x|z) [nats]", color=colours[1])
    twin.grid(False)
    ax.set_title(title)
    fig.tight_layout()
    return fig


def chapter_bits_figure(bars: pd.DataFrame, title: str):

    sns.set_theme(style="whitegrid", context="notebook")
    fig, ax = plt.subplots(figsize=(7.5, 0.55 * len(bars) + 1.5), dpi=150)
    sns.barplot(data=bars, y="label", x="bpp", color=sns.color_palette("tab10")[0], ax=ax)
    for patch, row in zip(ax.patches, bars.itertuples(), strict=False):
        ax.annotate(f" {row.bpp:.3f} ({row.rate_kind}; {row.decodes})",
                    (patch.get_width(), patch.get_y() + patch.get_height() / 2),
                    va="center", fontsize=8)  # fmt: skip
    ax.set_xlim(0, float(bars["bpp"].max()) * 1.9)
    ax.set_xlabel("bits per pixel (coded bytes; lower is better)")
    ax.set_ylabel("")
    ax.set_title(title)
    fig.tight_layout()
    return fig


# --- the report's section ------------------------------------------------------------------


def beta_section(
    frame: pd.DataFrame, out_dir: Path, folders: list[Path], entropy: float | None = None
) -> tuple[list[str], list[Path]]:
    """Markdown lines and figure files for every dataset with β-swept arms (none: empty)."""

    points = swept(beta_points(frame))
    md: list[str] = []
    files: list[Path] = []
    if points.empty:
        return md, files
    for dataset, rows in points.groupby("dataset", sort=True):
        name = slug(dataset)
        md += ["", f"## {dataset}: the β sweep", ""]
        figures = {
            f"rd_plane_{name}": rd_plane_figure(
                rows, f"{dataset}: the rate–distortion plane (test split)", entropy
            ),
            f"rate_distortion_vs_beta_{name}": against_beta_figure(
                rows, f"{dataset}: rate and distortion against β"
            ),
        }
        has_mi = "mutual_info_nats" in rows and rows["mutual_info_nats"].notna().any()
        if has_mi:
            figures[f"mutual_info_vs_kl_{name}"] = mutual_info_figure(
                rows, f"{dataset}: I(x;z) ≤ KL at every β"
            )
        if "vlae" in set(rows["arm"]):
            figures[f"chapter_rate_distortion_vs_beta_{name}"] = chapter_rd_figure(
                rows, "vlae", f"VLAE on {dataset}: rate and distortion against β (measured)"
            )
        bars = chapter_bars(frame[frame["dataset"] == dataset])
        if not bars.empty:
            figures[f"chapter_bits_per_pixel_{name}"] = chapter_bits_figure(
                bars, f"{dataset}: bits per pixel (measured, {int(bars['n_images'].max())} images)"
            )
        grids = recon_grids(folders, dataset)
        if grids:
            figures[f"reconstructions_{name}"] = recon_grid_figure(
                grids, f"{dataset}: test digits (top) and reconstructions, per arm and β"
            )
        for stem, fig in figures.items():
            files += save_figure(fig, out_dir / stem)
            md.append(f"![{stem}]({stem}.png)")
        table = rows
        if has_mi:  # a model without a Gaussian posterior has no I(x;z) estimate
            holds = rows["mutual_info_nats"] <= rows["rate_nats"] + 1e-9
            table = table.assign(holds=np.where(holds, "yes", "**no**"))
        estimator = points.attrs.get("estimator", "elbo").upper()
        md += ["", f"Rate and distortion in nats per image ({estimator} pass over the images "
               "counted, mean over seeds); I(x;z) by ELBO surgery, which cannot exceed log N.", "",
               markdown_table(table.drop(columns="dataset").rename(columns={
                   "rate_nats": "rate (KL)", "distortion_nats": "distortion",
                   "neg_elbo_nats": "−ELBO", "mutual_info_nats": "I(x;z)",
                   "n_examples": "images", "holds": "I(x;z) ≤ KL"}))]  # fmt: skip
        if not bars.empty:
            md += ["", "The chapter's bits-per-pixel chart, measured on the same images:", "",
                   markdown_table(bars)]  # fmt: skip
    return md, files
