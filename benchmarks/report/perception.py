"""The perception–distortion plane (Blau & Michaeli 2018, "The Perception-Distortion
Tradeoff"): every lossy method at matched rates, its distortion (PSNR) against a perceptual
distance (LPIPS or DISTS), with the frontier each family of methods reaches.

Rates are matched by interpolation: each method's coded curve gives its PSNR and perceptual
distance at a target rate by linear interpolation in log-rate between its two neighbouring
settings, never extrapolated past its own range. Families are read off the rates a method
states: a KL bound makes it a latent-variable model, an entropy estimate a learned codec, real
bytes alone a classical codec; the VLAE's seeded draws and its decoder's means are kept apart
(``decoded_as``).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from benchmarks.report.labels import axis_label
from benchmarks.report.plots import plt, sns

PERCEPTUAL = ("lpips_alex", "dists", "lpips_vgg")  # the first present is drawn
FAMILIES = ("classical codec", "learned codec", "latent-variable model (mean)",
            "latent-variable model (draw)")  # fmt: skip


def perceptual_column(agg: pd.DataFrame) -> str | None:
    return next((c for c in PERCEPTUAL if c in agg and agg[c].notna().any()), None)


def families(rows: pd.DataFrame, draws: set[str]) -> pd.Series:
    """Each row's family, from the rate kinds its method states (see the module doc);
    ``draws`` are the methods whose decoded images are draws from p(x | z)."""
    kinds = rows.groupby("method")["rate_kind"].agg(set)
    drawn = rows["method"].isin(draws)

    def family(method: str) -> str:
        if "kl" in kinds[method] or "prior" in kinds[method]:
            return "latent-variable model"
        return "learned codec" if "estimate" in kinds[method] else "classical codec"

    named = rows["method"].map(family)
    model = named == "latent-variable model"
    return named.where(~model, named + np.where(drawn, " (draw)", " (mean)"))


def matched(agg: pd.DataFrame, perceptual: str, draws: set[str]) -> pd.DataFrame:
    """Per coded lossy method, at each of :func:`target_rates`: its interpolated PSNR and
    ``perceptual``."""
    coded = agg[(agg["rate_kind"] == "coded") & np.isfinite(agg["psnr"].astype(float))]
    coded = coded[coded[perceptual].notna() & (coded["bpp"] > 0)]
    if coded.empty:
        return pd.DataFrame()
    coded = coded.assign(family=families(agg, draws).loc[coded.index])
    curves = {m: c.sort_values("bpp") for m, c in coded.groupby("method")}
    rows = []
    for rate in target_rates({m: (c["bpp"].min(), c["bpp"].max()) for m, c in curves.items()}):
        for method, curve in curves.items():
            log_rate = np.log(curve["bpp"].to_numpy(float))
            at = np.log(rate)
            if not log_rate[0] - 1e-9 <= at <= log_rate[-1] + 1e-9:
                continue  # outside the method's own range: no extrapolation
            rows.append({
                "method": method, "family": curve["family"].iloc[0], "bpp": rate,
                "psnr": float(np.interp(at, log_rate, curve["psnr"].to_numpy(float))),
                perceptual: float(np.interp(at, log_rate, curve[perceptual].to_numpy(float))),
            })  # fmt: skip
    return pd.DataFrame(rows)


def target_rates(ranges: dict[str, tuple[float, float]], most: int = 3) -> list[float]:
    """Up to ``most`` rates (two significant digits, at least 1.5x apart) inside the ranges
    of the most methods, and of at least two."""
    low, high = min(lo for lo, _ in ranges.values()), max(hi for _, hi in ranges.values())
    grid = {float(f"{r:.2g}") for r in np.geomspace(low, high, 25)}
    cover = {r: sum(lo <= r <= hi for lo, hi in ranges.values()) for r in grid}
    chosen: list[float] = []
    for rate in sorted(cover, key=lambda r: (-cover[r], r)):
        if cover[rate] >= 2 and all(max(rate, c) / min(rate, c) >= 1.5 for c in chosen):
            chosen.append(rate)
        if len(chosen) == most:
            break
    return sorted(chosen)


def frontier(points: pd.DataFrame, perceptual: str) -> pd.DataFrame:
    """The points no other point beats on both axes (higher PSNR and lower distance)."""
    kept = []
    for index, row in points.iterrows():
        beaten = (points["psnr"] >= row["psnr"]) & (points[perceptual] <= row[perceptual]) & (
            (points["psnr"] > row["psnr"]) | (points[perceptual] < row[perceptual]))  # fmt: skip
        if not beaten.any():
            kept.append(index)
    return points.loc[kept].sort_values("psnr")


def perception_figure(points: pd.DataFrame, perceptual: str, title: str) -> plt.Figure | None:
    """One panel per matched rate: each method a point, each family's frontier a line."""
    if points.empty:
        return None
    rates = sorted(set(points["bpp"]))
    sns.set_theme(style="whitegrid", context="notebook")
    fig, axes = plt.subplots(1, len(rates), figsize=(4.6 * len(rates) + 2.4, 4.6), dpi=150,
                             squeeze=False)  # fmt: skip
    present = [f for f in FAMILIES if f in set(points["family"])]
    colours = dict(zip(present, sns.color_palette("tab10", len(present)), strict=True))
    for ax, rate in zip(axes[0], rates, strict=True):
        at = points[points["bpp"] == rate]
        for fam, rows in at.groupby("family"):
            ax.scatter(rows["psnr"], rows[perceptual], color=colours[fam], s=36, zorder=3,
                       label=fam)  # fmt: skip
            front = frontier(rows, perceptual)
            ax.plot(front["psnr"], front[perceptual], color=colours[fam], lw=1.2, alpha=0.8)
            for _, row in rows.iterrows():
                ax.annotate(row["method"], (row["psnr"], row[perceptual]), fontsize=7,
                            xytext=(3, 3), textcoords="offset points")  # fmt: skip
        ax.set_title(f"{rate:g} bpp (interpolated)")
        ax.set_xlabel("PSNR [dB] (distortion: right is better)")
        ax.set_ylabel(axis_label(perceptual, "lower"))
    handles = [plt.Line2D([], [], color=colours[f], marker="o", lw=1.2, label=f) for f in present]
    axes[0][-1].legend(handles=handles, loc="upper left", bbox_to_anchor=(1.02, 1.0),
                       frameon=False, title="family (line: its frontier)")  # fmt: skip
    fig.suptitle(title)
    fig.tight_layout()
    return fig
