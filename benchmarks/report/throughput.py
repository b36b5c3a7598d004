"""The throughput part of a report: a table per device and images/s against batch size."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from benchmarks.report.format import markdown_table
from benchmarks.report.plots import plt, save_figure, slug, sns

COLUMNS = {
    "target": "target", "method": "method", "phase": "phase", "batch_size": "batch",
    "dtype": "dtype",
    "images_per_s": "images/s", "pixels_per_s": "Mpixels/s", "p50_ms": "p50 ms",
    "p95_ms": "p95 ms", "iqr_ms": "IQR ms", "peak_mem_mb": "peak MB",
    "entropy_share": "entropy coding share",
}  # fmt: skip


def is_throughput(frame: pd.DataFrame) -> pd.Series:
    return frame["phase"].notna() if "phase" in frame else pd.Series(False, index=frame.index)


def throughput_table(rows: pd.DataFrame) -> pd.DataFrame:
    table = rows[[c for c in COLUMNS if c in rows]].copy()
    if "pixels_per_s" in table:
        table["pixels_per_s"] = table["pixels_per_s"] / 1e6
    return table.rename(columns=COLUMNS).reset_index(drop=True)


def throughput_figure(rows: pd.DataFrame, title: str):
    """images/s against batch size (log-log), one panel per phase, a line per target (a model
    checkpoint and a codec of the same architecture are two targets)."""

    order = ("train_step", "train_loop", "dataloader_loop", "forward", "encode", "decode", "sample")
    phases = [p for p in order if p in set(rows["phase"])]
    key = "target" if "target" in rows else "method"
    methods = sorted(set(rows[key]))
    palette = dict(zip(methods, sns.color_palette("tab20" if len(methods) > 10 else "tab10",
                                                  len(methods)), strict=True))  # fmt: skip
    fig, axes = plt.subplots(1, len(phases), figsize=(3.6 * len(phases), 3.4), squeeze=False)
    for ax, phase in zip(axes[0], phases, strict=True):
        part = rows[rows["phase"] == phase]
        sns.lineplot(data=part, x="batch_size", y="images_per_s", hue=key, style="dtype",
                     hue_order=methods, palette=palette, marker="o", ax=ax,
                     legend=ax is axes[0][-1])  # fmt: skip
        ax.set(xscale="log", yscale="log", title=phase, xlabel="batch size", ylabel="images/s")
        ax.grid(True, which="both", alpha=0.3)
    if axes[0][-1].get_legend() is not None:
        sns.move_legend(axes[0][-1], "upper left", bbox_to_anchor=(1.02, 1), fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def throughput_section(frame: pd.DataFrame, out_dir: Path) -> tuple[list[str], list[Path]]:
    """Markdown lines and figure files for the throughput rows of ``frame`` (none: nothing)."""

    rows = frame[is_throughput(frame)]
    md: list[str] = []
    files: list[Path] = []
    for device, part in rows.groupby("device"):
        where = str(device)
        first = part.iloc[0]
        if str(device).startswith("cuda") and "gpu" in part:
            where += f", {first['gpu']}"
        elif "cpu" in part:
            where += f", {first['cpu']}, {int(first['threads'])} thread(s)"
        peak = "the CUDA allocator's peak" if str(device).startswith("cuda") else "the RSS peak"
        md += ["", f"## Throughput ({where})", "",
               "Median of the timed calls (p50) with p95 and the interquartile range; "
               f"images/s at the median; peak memory is {peak} of the process; "
               "entropy coding share: the part of a call inside the entropy coder.",
               "", markdown_table(throughput_table(part))]  # fmt: skip
        stem = out_dir / f"throughput_{slug(str(device))}"
        files += save_figure(throughput_figure(part, f"throughput: {where}"), stem)
        md += ["", f"![throughput]({stem.name}.png)"]
    return md, files
