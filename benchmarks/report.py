"""Render stored results as a Markdown (and optionally LaTeX) report with RD figures.

The report reads only the results table and ``run.json`` files: it can be re-rendered at any
time, and several runs can be combined into one report.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd

from benchmarks import metrics
from benchmarks.errors import BenchError
from benchmarks.plots import RATE_KIND_LABELS, rd_plots
from benchmarks.results import RUN_JSON, aggregate, atomic_write

LOSSY_COLUMNS = {
    "method": "method", "param": "param", "value": "value", "bpp": "bpp",
    "psnr": "PSNR [dB]", "ms_ssim_db": "MS-SSIM [dB]", "ssim": "SSIM",
    "enc_ms": "enc [ms]", "dec_ms": "dec [ms]", "n_images": "images",
}  # fmt: skip
LOSSLESS_COLUMNS = {
    "method": "method", "param": "param", "value": "value", "bpp": "bpp",
    "bits_per_dim": "bits/dim", "enc_ms": "enc [ms]", "dec_ms": "dec [ms]", "n_images": "images",
}  # fmt: skip


MODEL_COLUMNS = {
    "method": "method", "value": "β", "rate_kind": "rate kind", "estimator": "NLL estimator",
    "iw_samples": "k", "nll_nats": "NLL [nats]", "bits_per_dim": "bits/dim",
    "neg_elbo_nats": "−ELBO [nats]", "rate_nats": "rate [nats]",
    "distortion_nats": "distortion [nats]", "active_units": "active units",
    "mutual_info_nats": "I(x;z) [nats]", "perplexity": "perplexity",
    "codebook_usage": "codebook usage", "n_examples": "images",
}  # fmt: skip


def model_table(frame: pd.DataFrame) -> pd.DataFrame:
    """Split-level model evaluations: the columns that some row fills, in a fixed order."""
    rows = frame[frame["rate_kind"] != "coded"]
    columns = {k: v for k, v in MODEL_COLUMNS.items() if k in rows and rows[k].notna().any()}
    order = ["dataset", "split", "method", "value", "rate_kind"]
    return rows.sort_values(order)[list(columns)].rename(columns=columns)


def load_runs(dirs: list[Path]) -> list[dict]:
    runs = []
    for folder in dirs:
        path = Path(folder) / RUN_JSON
        if path.exists():
            try:
                runs.append(json.loads(path.read_text()))
            except json.JSONDecodeError as err:
                raise BenchError(f"{path} is not valid JSON: {err}") from err
    return runs


def _display(agg: pd.DataFrame, columns: dict[str, str]) -> pd.DataFrame:
    table = agg.assign(enc_ms=agg["enc_s"] * 1e3, dec_ms=agg["dec_s"] * 1e3)
    return table[list(columns)].rename(columns=columns)


def bd_table(agg: pd.DataFrame, anchor: str) -> pd.DataFrame:
    """BD-rate and BD-PSNR of every lossy coded curve against the anchor's curve."""
    curves = {m: rows.sort_values("bpp") for m, rows in agg.groupby("method")}
    base = curves[anchor]
    rows = []
    for method, curve in curves.items():
        if method == anchor:
            continue
        row = {"method": method, "anchor": anchor}
        for name, fn, dist in (
            ("BD-rate PSNR [%]", metrics.bd_rate, "psnr"),
            ("BD-PSNR [dB]", metrics.bd_psnr, "psnr"),
            ("BD-rate MS-SSIM [%]", metrics.bd_rate, "ms_ssim_db"),
        ):
            try:
                row[name] = fn(base["bpp"], base[dist], curve["bpp"], curve[dist])
            except BenchError as err:
                row[name] = f"n/a ({err})"
        rows.append(row)
    return pd.DataFrame(rows)


def markdown_table(table: pd.DataFrame) -> str:
    blanks = table.astype(object).where(table.notna(), None)  # tabulate blanks None, not NaN
    return blanks.to_markdown(index=False, floatfmt=".4g", missingval="")


def render_report(
    frame: pd.DataFrame,
    out_dir: Path,
    *,
    runs: list[dict] | None = None,
    anchor: str | None = None,
    latex: bool = False,
) -> list[Path]:
    """Write ``report.md`` (and ``report.tex``) plus figures into ``out_dir``; return the files."""
    out_dir.mkdir(parents=True, exist_ok=True)
    agg = aggregate(frame)
    figures = rd_plots(agg, out_dir)
    md = ["# vlae-bench report", ""]
    tex: list[str] = []
    for run in runs or []:
        md.append(f"- run `{run.get('run_id')}` ({run.get('status')}): `{run.get('command')}`")
    if runs:
        versions = runs[-1].get("versions", {})
        md += ["", "Versions: " + ", ".join(f"{k} {v}" for k, v in sorted(versions.items())), ""]
    kinds = sorted(agg["rate_kind"].dropna().unique())
    notes = "; ".join(f"`{k}` = {RATE_KIND_LABELS.get(k, k)}" for k in kinds)
    if "coded" in kinds:
        notes += ". Coded rates count every byte of the stream, headers included"
    md.append(f"Rates: {notes}. Metrics are computed per image, then averaged over images.")
    models = frame[frame["rate_kind"] != "coded"]
    for (dataset, split), rows in models.groupby(["dataset", "split"], sort=True, dropna=False):
        table = model_table(rows)
        md += ["", f"## {dataset} / {split}: models", "", markdown_table(table)]
        tex += [f"% {dataset} / {split}: models", table.to_latex(index=False, float_format="%.4g")]
    for dataset, rows in agg.groupby("dataset", sort=True):
        coded = rows[rows["rate_kind"] == "coded"]
        if coded.empty:
            continue
        lossless = coded[coded["psnr"].map(math.isinf)]
        lossy = coded[~coded["psnr"].map(math.isinf)]
        md += ["", f"## {dataset}", ""]
        for metric in ("psnr", "ms_ssim_db"):
            for path in figures.get((dataset, metric), []):
                if path.suffix == ".png":
                    md.append(f"![{metric} vs bpp]({path.name})")
        sections = [("Lossy codecs", _display(lossy, LOSSY_COLUMNS))]
        if not lossless.empty:
            sections.append(("Lossless codecs", _display(lossless, LOSSLESS_COLUMNS)))
        chosen = anchor or ("jpeg" if "jpeg" in set(lossy["method"]) else None)
        if chosen and chosen in set(lossy["method"]) and lossy["method"].nunique() > 1:
            sections.append(
                (f"Bjøntegaard deltas against {chosen} (PCHIP, negative = fewer bits)",
                 bd_table(lossy, chosen))
            )  # fmt: skip
        elif anchor:
            md += ["", f"(anchor '{anchor}' has no lossy curve for {dataset}; no BD table)"]
        for heading, table in sections:
            if table.empty:
                continue
            md += ["", f"### {heading}", "", markdown_table(table)]
            tex += [f"% {dataset}: {heading}", table.to_latex(index=False, float_format="%.4g")]
    written = [out_dir / "report.md"]
    atomic_write(written[0], lambda p: p.write_text("\n".join(md) + "\n"))
    if latex:
        written.append(out_dir / "report.tex")
        atomic_write(written[1], lambda p: p.write_text("\n".join(tex) + "\n"))
    return written + [p for paths in figures.values() for p in paths]
