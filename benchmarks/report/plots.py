"""Seaborn figures: rate-distortion curves and bits/dim bars from aggregated results, and the
figures of a paper-style comparison (:mod:`benchmarks.studies.comparison`). The report's
sections draw with the ``plt``, ``sns`` and ``mpimg`` this module sets up (the Agg backend:
figures are files). Imported only when drawing: seaborn and matplotlib take seconds to load."""

from __future__ import annotations

import re
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # figures are files; never open a window

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402

from benchmarks.report.labels import RATE_KIND_LABELS, axis_label  # noqa: E402
from vlae_models.files import atomic_write  # noqa: E402

MARKER_PT = 6.0
GAP_FACTOR = 1.2  # centres at least 1.2 marker diameters apart


def slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_") or "dataset"


def curve_labels(agg: pd.DataFrame) -> pd.Series:
    """Method name, plus the rate kind when several kinds share a figure (never mix silently)."""
    if agg["rate_kind"].nunique() > 1:
        return agg["method"] + " [" + agg["rate_kind"].map(RATE_KIND_LABELS.get) + "]"
    return agg["method"]


def rd_figure(
    agg: pd.DataFrame, metric: str, title: str, better: str = "higher"
) -> plt.Figure | None:
    """One RD figure of ``metric`` (better ``higher`` or ``lower``) against bpp; None when no
    row has a finite rate and a finite ``metric``."""
    data = agg[np.isfinite(agg["bpp"].astype(float)) & np.isfinite(agg[metric].astype(float))]
    if data.empty:
        return None
    kind = data["rate_kind"].map(RATE_KIND_LABELS.get).rename("rate")
    data = data.assign(curve=curve_labels(data), rate=kind).sort_values(["curve", "bpp"])
    sns.set_theme(style="whitegrid", context="notebook")
    methods = data["method"].nunique()
    fig, ax = plt.subplots(figsize=(7.5 + 0.15 * max(0, methods - 6), 4.8), dpi=150)
    # One colour per method, one line style per rate kind: real codes solid, bounds and
    # estimates dashed (a KL bound is not a file size), so a method's coded curve and its
    # bound pair up by colour.
    dashes = {label: "" if label == RATE_KIND_LABELS["coded"] else (4, 2) for label in kind}
    palette = sns.color_palette("tab10" if methods <= 10 else "tab20", methods)
    front = pareto_front(data, "bpp", metric, "curve", better)
    sns.lineplot(
        data=data[front], x="bpp", y=metric, hue="method", style="rate", units="curve",
        markers=True, dashes=dashes, sort=True, estimator=None, palette=palette, ax=ax,
    )  # fmt: skip
    colours = dict(zip(data["method"].drop_duplicates(), palette, strict=False))
    dominated = data[~front]
    if not dominated.empty:  # points off their method's front: hollow, same colour
        ax.scatter(dominated["bpp"], dominated[metric], s=MARKER_PT**2, facecolors="none",
                   edgecolors=[colours[m] for m in dominated["method"]], zorder=3)  # fmt: skip
        ax.scatter([], [], s=MARKER_PT**2, facecolors="none", edgecolors="0.4",
                   label="off its method's Pareto front")  # fmt: skip
    kinds = ", ".join(RATE_KIND_LABELS[k] for k in sorted(data["rate_kind"].unique()))
    ax.set_xlabel(f"Rate [bits per pixel] ({kinds})")
    label = axis_label(metric, better)
    if metric == "psnr" and "channels" in data and (data["channels"] == 3).all():
        label = "PSNR-RGB [dB]"  # gray images get plain PSNR
    ax.set_ylabel(label)
    ax.set_title(title)
    ax.legend(title=None, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    fig.tight_layout()
    thin_markers(ax)
    return fig


def pareto_front(
    data: pd.DataFrame, rate: str, quality: str, by: str, better: str = "higher"
) -> pd.Series:
    """Per ``by`` group, the points no other point of the group beats: none with a rate as
    low or lower has a quality as good or better (higher, or lower for a lower-is-better
    ``quality``). The line of each curve is drawn through these (a codec's quality sweep can
    double back, a β sweep too)."""
    sign = 1.0 if better == "higher" else -1.0
    front = pd.Series(False, index=data.index)
    for _, rows in data.groupby(by, sort=False):
        best = -np.inf
        scored = rows.assign(_q=sign * rows[quality].astype(float))
        for index, row in scored.sort_values([rate, "_q"], ascending=[True, False]).iterrows():
            if row["_q"] > best:
                front[index] = True
                best = row["_q"]
    return front


def marker_centres(ax: plt.Axes) -> list[np.ndarray]:
    """Display coordinates (pixels) of the markers each line shows."""
    ax.figure.canvas.draw()
    centres = []
    for line in ax.lines:
        xy = ax.transData.transform(line.get_xydata())
        every = line.get_markevery()
        centres.append(xy[every] if isinstance(every, list) else xy)
    return [xy for xy in centres if len(xy)]


def min_marker_gap(ax: plt.Axes) -> float:
    """Smallest distance, in points, between two shown markers of one curve (inf if none)."""
    gaps = []
    for xy in marker_centres(ax):
        if len(xy) > 1:
            diff = xy[:, None, :] - xy[None, :, :]
            dist = np.sqrt((diff**2).sum(-1)) + np.eye(len(xy)) * 1e9
            gaps.append(dist.min())
    return min(gaps) * 72.0 / ax.figure.dpi if gaps else float("inf")


def thin_markers(ax: plt.Axes, size: float = MARKER_PT) -> None:
    """Show a marker only where it keeps one marker diameter from every shown one.

    The line still passes through every point; only crowded markers (e.g. a codec's low
    qualities bunched at low rate) are left out, so none overlap at the default size.
    """
    ax.figure.canvas.draw()
    min_gap_px = size * GAP_FACTOR * ax.figure.dpi / 72.0
    for line in ax.lines:
        xy = ax.transData.transform(line.get_xydata())
        kept: list[int] = []
        for i, point in enumerate(xy):
            if all(np.hypot(*(point - xy[j])) >= min_gap_px for j in kept):
                kept.append(i)
        line.set_markersize(size)
        line.set_markevery(kept)


def save_figure(fig: plt.Figure, stem: Path) -> list[Path]:
    paths = [stem.with_suffix(".png"), stem.with_suffix(".svg")]
    for path in paths:
        fmt = path.suffix[1:]
        atomic_write(path, lambda p, fmt=fmt: fig.savefig(p, format=fmt, bbox_inches="tight"))
    plt.close(fig)
    return paths


def rd_plots(
    agg: pd.DataFrame, out_dir: Path, extra: dict[str, str] | None = None
) -> dict[tuple[str, str, str], list[Path]]:
    """PSNR and MS-SSIM (dB) vs bpp, and each ``extra`` metric column (``{column: better}``),
    for each dataset and image set (curves measured on other images are not comparable, so
    they get their own figure); returns ``{(dataset, image_set, metric): files}``."""
    axes = {"psnr": "higher", "ms_ssim_db": "higher", **(extra or {})}
    if agg.empty:
        return {}
    written = {}
    views = agg.assign(view=agg["dataset"] + _options(agg))
    for (dataset, image_set), rows in views.groupby(["dataset", "image_set"], sort=True):
        view = rows["view"].iloc[0]
        several = views.loc[views["view"] == view, "image_set"].nunique() > 1
        stem = slug(view) + (f"_{slug(image_set)}" if several else "")
        n = int(rows["n_images"].max())
        for metric, better in axes.items():
            title = f"{view}: mean over {n} image{'s' if n != 1 else ''}"
            fig = rd_figure(rows, metric, title, better)
            if fig is not None:
                written[(dataset, image_set, metric)] = save_figure(
                    fig, out_dir / f"rd_{metric}_{stem}"
                )
    return written


def _options(agg: pd.DataFrame) -> pd.Series:
    """ ":crop=128" for rows measured on a view of their dataset, "" otherwise."""
    if "items" not in agg:
        return pd.Series("", index=agg.index)
    return agg["items"].map(lambda o: f":{o}" if isinstance(o, str) and o else "")


def bits_figure(table: pd.DataFrame, title: str) -> plt.Figure:
    """Horizontal bars of bits/dim, one per row of ``table`` (columns ``label``,
    ``bits_per_dim``, ``kind``): real codes and bounds side by side, each labelled."""
    data = table.sort_values("bits_per_dim", ascending=False)
    sns.set_theme(style="whitegrid", context="notebook")
    width = max(7.5, 4.0 + 0.09 * int(data["label"].str.len().max()))  # long labels need room
    fig, ax = plt.subplots(figsize=(width, 0.45 * len(data) + 1.4), dpi=150)
    sns.barplot(data=data, y="label", x="bits_per_dim", hue="kind", dodge=False, ax=ax)
    for bar_container in ax.containers:
        ax.bar_label(bar_container, fmt="%.3f", padding=3, fontsize=8)
    ax.set_xlim(0, float(data["bits_per_dim"].max()) * 1.15)  # room for the value labels
    ax.set_xlabel("bits per dimension (lower is better)")
    ax.set_ylabel("")
    ax.set_title(title)
    ax.legend(title=None, loc="lower right")  # the shortest bars are at the bottom
    fig.tight_layout()
    return fig


# --- paper-style comparisons -------------------------------------------------------------


def arm_comparison_figure(
    table: pd.DataFrame, per_seed: pd.DataFrame, order: list[str], dataset: str
) -> plt.Figure:
    """NLL and KL per arm (rows in ``order``): each of our seeds (dots) and the paper's value
    (crosses; hollow where the paper's number is for another dataset). ``table`` and
    ``per_seed`` are :mod:`benchmarks.studies.comparison`'s tables."""
    rows = table.set_index("arm").loc[order]
    colours = sns.color_palette("deep", len(order))
    sns.set_theme(style="whitegrid", context="notebook")
    fig, axes = plt.subplots(1, 2, figsize=(11, 0.5 * len(order) + 1.7), dpi=150, sharey=True)
    panels = (("nll", "test NLL [nats]"), ("kl", "KL(q(z|x) ‖ p(z)) [nats]"))
    for ax, (metric, title) in zip(axes, panels, strict=True):
        for i, arm in enumerate(order):
            ours = per_seed.loc[per_seed["arm"] == arm, metric].astype(float)
            ax.scatter(ours, [i] * len(ours), s=45, color=colours[i], alpha=0.85, zorder=3)
            paper = float(rows.loc[arm, f"paper_{metric}"])
            if not np.isnan(paper):
                same = rows.loc[arm, "paper_dataset"] == dataset
                ax.scatter(
                    [paper], [i], marker="X", s=80, zorder=4,
                    facecolor="black" if same else "white", edgecolor="black",
                )  # fmt: skip
        ax.set_xlabel(title)
    axes[0].set_yticks(range(len(order)), list(rows["label"]))
    axes[0].set_ylim(len(order) - 0.5, -0.5)
    handles = [
        plt.Line2D([], [], ls="", marker="o", color="grey", label="ours (one dot per seed)"),
        plt.Line2D([], [], ls="", marker="X", color="black", label=f"paper, {dataset}"),
        plt.Line2D([], [], ls="", marker="X", mfc="white", mec="black", label="paper, other data"),
    ]
    fig.legend(handles=handles, loc="upper center", ncol=3, frameon=False)
    fig.tight_layout(rect=(0, 0, 1, 0.9))
    return fig


def training_figure(logs: pd.DataFrame, order: list[str]) -> plt.Figure:
    """Rate (KL) and distortion against training step, one line per (arm, seed); ``logs`` is
    :func:`benchmarks.studies.comparison.training_logs`'s table."""
    sns.set_theme(style="whitegrid", context="notebook")
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.2), dpi=150)
    for ax, metric, label in zip(
        axes, ("rate", "distortion"), ("rate: KL [nats]", "distortion [nats]"), strict=True
    ):
        sns.lineplot(
            data=logs, x="step", y=metric, hue="arm", hue_order=order, units="seed",
            estimator=None, lw=1.2, ax=ax, legend=ax is axes[1],
        )  # fmt: skip
        ax.set_ylabel(f"{label}, training batches")
    low, high = logs["distortion"].quantile([0.0, 0.9])
    axes[1].set_ylim(low - 2, high)
    axes[1].legend(title=None, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    fig.tight_layout()
    return fig


def draws_figure(grids: dict[str, Path]) -> plt.Figure:
    """The arms' "what z keeps" grids stacked: in each row a test image, then draws from
    p(x | z) for its one z."""
    fig, axes = plt.subplots(len(grids), 1, figsize=(6, 3.3 * len(grids)), dpi=150, squeeze=False)
    for ax, (label, path) in zip(axes[:, 0], grids.items(), strict=True):
        ax.imshow(plt.imread(path), interpolation="nearest")
        ax.set_title(label, fontsize=9)
        ax.axis("off")
    fig.suptitle("first column: test image; then 7 draws from p(x | z) for one z", fontsize=10)
    fig.tight_layout(rect=(0, 0, 1, 0.985))
    return fig
