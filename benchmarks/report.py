"""Render stored results as a Markdown (and optionally LaTeX) report with figures.

The report reads only the results table and ``run.json`` files: it can be re-rendered at any
time, and several runs can be combined into one report. Per-image rows (codecs, and models
run as methods) are averaged per dataset and image set: curves measured on different images
get separate sections, never one mean. Split-level model evaluations (``image == "__all__"``)
get their own tables. Where a dataset has lossless codes or likelihood bounds, one bits/dim
figure puts them side by side, each labelled with its rate kind.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from benchmarks import metrics
from benchmarks.beta_report import beta_section
from benchmarks.errors import BenchError
from benchmarks.results import ALL_IMAGES, aggregate
from vlae_models.files import atomic_write

LOSSY_COLUMNS = {
    "method": "method", "param": "param", "value": "value", "rate_kind": "rate kind",
    "bpp": "bpp", "psnr": "PSNR [dB]", "ms_ssim_db": "MS-SSIM [dB]", "ssim": "SSIM",
    "bit_error_rate": "bit error rate", "enc_ms": "enc [ms]", "dec_ms": "dec [ms]",
    "n_images": "images", "n_exact": "exact images",
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
RATE_KIND_LABELS = {
    "coded": "real coded bytes",
    "kl": "KL bound",
    "estimate": "entropy estimate",
    "fixed": "fixed-length code",
    "prior": "code length under learned prior",
}


ARM_MEANS = ["bpp", "bits_per_dim", "rate_nats", "distortion_nats", "nll_nats", "psnr",
             "ssim", "ms_ssim_db"]  # fmt: skip
ARM_COLUMNS = {
    "dataset": "dataset", "method": "arm", "value": "β/λ/q", "rate_kind": "rate kind",
    "estimator": "estimator", "seeds": "seeds", "bpp": "bpp", "bits_per_dim": "bits/dim",
    "rate_nats": "rate [nats]", "distortion_nats": "distortion [nats]", "nll_nats": "NLL [nats]",
    "psnr": "PSNR [dB]", "ssim": "SSIM", "ms_ssim_db": "MS-SSIM [dB]", "nll_sd": "NLL sd",
    "psnr_sd": "PSNR sd", "bpp_sd": "bpp sd", "images": "images",
}  # fmt: skip


def arm_table(frame: pd.DataFrame) -> pd.DataFrame:
    """Per arm, grid value, rate kind and estimator: the mean over seeds of each seed's
    numbers (per-image rows averaged first; split-level rows as they are), with the standard
    deviation over seeds of bpp, NLL and PSNR (NaN for one seed)."""
    per_image = frame[frame["image"] != ALL_IMAGES]
    parts = []
    if not per_image.empty:
        parts.append(aggregate(per_image).assign(estimator="per image"))
    split = frame[frame["image"] == ALL_IMAGES]
    if not split.empty:
        parts.append(split.assign(estimator=split["estimator"].fillna("") + split.get(
            "iw_samples", pd.Series(np.nan, index=split.index)).map(
            lambda k: f" k={int(k)}" if k == k and k else "")))  # fmt: skip
    if not parts:
        return pd.DataFrame(columns=list(ARM_COLUMNS.values()))
    rows = pd.concat(parts, ignore_index=True)
    rows["seed"] = rows["seed"].fillna("") if "seed" in rows else ""
    counts = [rows[c] for c in ("n_images", "n_examples") if c in rows]
    rows["images"] = pd.concat(counts, axis=1).max(axis=1) if counts else np.nan
    keys = ["dataset", "method", "value", "rate_kind", "estimator"]
    numbers = rows[ARM_MEANS + ["images"]].apply(pd.to_numeric, errors="coerce")
    grouped = pd.concat([rows[keys + ["seed"]], numbers], axis=1).groupby(
        keys, dropna=False, sort=True
    )
    table = grouped[ARM_MEANS].mean()
    table["seeds"] = grouped["seed"].nunique()
    table["images"] = grouped["images"].max()
    for column in ("nll_nats", "psnr", "bpp"):
        table[f"{column.split('_')[0]}_sd"] = grouped[column].std(ddof=1)
    table = table.reset_index().dropna(axis=1, how="all")
    return table[[c for c in ARM_COLUMNS if c in table]].rename(columns=ARM_COLUMNS)


def model_table(frame: pd.DataFrame) -> pd.DataFrame:
    """Split-level model evaluations: the columns that some row fills, in a fixed order."""
    columns = {k: v for k, v in MODEL_COLUMNS.items() if k in frame and frame[k].notna().any()}
    order = ["dataset", "split", "method", "value", "rate_kind"]
    return frame.sort_values(order)[list(columns)].rename(columns=columns)


def _display(agg: pd.DataFrame, columns: dict[str, str]) -> pd.DataFrame:
    table = agg.assign(enc_ms=agg["enc_s"] * 1e3, dec_ms=agg["dec_s"] * 1e3)
    shown = table.notna().any() & ~((table == 0).all() & (table.columns == "n_exact"))
    keep = {k: v for k, v in columns.items() if k in ("method", "value") or shown[k]}
    return table[list(keep)].rename(columns=keep)


BD_COLUMNS = ("BD-rate PSNR [%]", "BD-PSNR [dB]", "BD-rate MS-SSIM [%]")


def bd_table(agg: pd.DataFrame, anchor: str) -> pd.DataFrame:
    """BD-rate and BD-PSNR of every lossy coded curve against the anchor's curve."""
    curves = {m: rows.sort_values("bpp") for m, rows in agg.groupby("method")}
    base = curves[anchor]
    rows = []
    for method, curve in curves.items():
        if method == anchor:
            continue
        row = {"method": method, "anchor": anchor}
        if len(curve) < 2:
            rows.append({**row, **dict.fromkeys(BD_COLUMNS, "n/a (one point: BD needs a curve)")})
            continue
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


GAP_KINDS = ("estimate", "kl", "prior")


def gap_table(agg: pd.DataFrame) -> pd.DataFrame:
    """Per setting with a real code: its coded rate beside the rate its forward pass states
    (entropy estimate, KL bound, or code length under the prior), the gap between them, the
    whole container's rate, and encode/decode speed."""
    key = ["method", "value"]
    coded = agg[agg["rate_kind"] == "coded"]
    stated = agg[agg["rate_kind"].isin(GAP_KINDS)][[*key, "rate_kind", "bpp"]]
    merged = stated.merge(coded, on=key, suffixes=("_stated", ""))
    if merged.empty:
        return merged
    table = pd.DataFrame({
        "method": merged["method"], "value": merged["value"],
        "stated rate": merged["rate_kind_stated"].map(RATE_KIND_LABELS),
        "stated bpp": merged["bpp_stated"], "coded bpp (payload)": merged["bpp"],
        "gap [%]": (merged["bpp"] / merged["bpp_stated"] - 1) * 100,
        "container bpp": merged.get("container_bpp"),
        "enc [img/s]": 1 / merged["enc_s"], "dec [img/s]": 1 / merged["dec_s"],
    })  # fmt: skip
    return table.sort_values(key, ignore_index=True)


def is_lossless(agg: pd.DataFrame) -> pd.Series:
    """Exact reconstructions: infinite PSNR, or no bit errors on binary data."""
    return agg["psnr"].map(math.isinf) | (agg["bit_error_rate"] == 0)


def markdown_table(table: pd.DataFrame) -> str:
    table = table.copy()
    for column in table.columns:  # counts stored as floats print as 10000, not 1e+04
        if table[column].dtype == object:  # numbers among notes ("n/a (...)"): as floatfmt
            table[column] = table[column].map(lambda v: f"{v:.4g}" if isinstance(v, float) else v)
            continue
        if table.empty:
            continue
        values = pd.to_numeric(table[column], errors="coerce")
        if values.notna().all() and (values == values.round()).all() and values.abs().max() < 2**53:
            table[column] = values.astype("Int64")
    blanks = table.astype(object).where(table.notna(), None)  # tabulate blanks None, not NaN
    return blanks.to_markdown(index=False, floatfmt=".4g", missingval="")


def latex_table(table: pd.DataFrame) -> str:
    """A LaTeX tabular with special characters (%, _, &, #) escaped."""
    return table.to_latex(index=False, float_format="%.4g", escape=True, na_rep="")


def bits_rows(per_image: pd.DataFrame, split_level: pd.DataFrame) -> pd.DataFrame:
    """Lossless codes and likelihood bounds of one dataset, in bits/dim, for one figure."""
    parts = []
    lossless = per_image[is_lossless(per_image) & per_image["bits_per_dim"].notna()]
    for row in lossless.to_dict("records"):
        where = "whole split as one image" if row.get("items") == "mosaic" else "per image"
        if str(row["method"]).startswith("bb-ans"):  # chained messages, not one file per image
            where = f"chained, {row.get('n_images', 0):g} images, initial bits counted"
        kind = RATE_KIND_LABELS.get(row["rate_kind"], row["rate_kind"])
        label = f"{row['method']} ({where})"
        parts.append({"label": label, "bits_per_dim": row["bits_per_dim"], "kind": kind})
    full = split_level["n_examples"].max() if "n_examples" in split_level else None
    for row in split_level.to_dict("records"):
        if not np.isfinite(float(row.get("bits_per_dim", np.nan))):
            continue
        estimator = row.get("estimator") or "elbo"
        subset = "" if row.get("n_examples") == full else f", {row['n_examples']:g} images"
        if row["rate_kind"] in ("fixed", "prior"):
            bars = [(f"{row['rate_kind']} code + distortion", row["bits_per_dim"])]
        else:
            bars = [(estimator_label(estimator, row.get("iw_samples")), row["bits_per_dim"])]
            if estimator == "iwae" and np.isfinite(float(row.get("elbo_bits_per_dim", np.nan))):
                bars.append(("−ELBO", row["elbo_bits_per_dim"]))  # the same images' bound
        kind = "exact likelihood" if estimator == "exact" else "likelihood bound"
        for what, bits in bars:
            label = f"{row['method']} ({what}{subset})"
            parts.append({"label": label, "bits_per_dim": bits, "kind": kind})
    return pd.DataFrame(parts).drop_duplicates("label")


def estimator_label(estimator: str, k: float | None) -> str:
    if estimator == "iwae":
        return f"IWAE NLL, k={k:g}" if k is not None and k == k else "IWAE NLL"
    return {"elbo": "−ELBO", "exact": "exact NLL"}.get(estimator, estimator)


def render_report(
    frame: pd.DataFrame,
    out_dir: Path,
    *,
    runs: list[dict] | None = None,
    anchor: str | None = None,
    latex: bool = False,
    html: bool = False,
    folders: list[Path] | None = None,
    entropy: float | None = None,
) -> list[Path]:
    """Write ``report.md`` and ``report.html`` (figures embedded; and ``report.tex``) plus
    figures into ``out_dir``; return the files. ``folders`` are the run folders, searched
    for sweep jobs' reconstruction grids; ``entropy`` is the data's, where known."""
    from benchmarks.plots import bits_figure, rd_plots, save_figure, slug
    from benchmarks.rd_figures import is_rd_theory, rd_theory_section
    from benchmarks.runs import make_folder
    from benchmarks.throughput_report import is_throughput, throughput_section

    make_folder(out_dir)  # a path under a regular file is a one-line error
    timed = is_throughput(frame)
    throughput_md, throughput_files = throughput_section(frame[timed], out_dir)
    theory = is_rd_theory(frame)
    theory_md, theory_files = rd_theory_section(frame[theory], out_dir)
    frame = frame[~timed & ~theory]
    split_level = frame[frame["image"] == ALL_IMAGES]
    agg = aggregate(frame[frame["image"] != ALL_IMAGES])
    figures = rd_plots(agg, out_dir)
    md = ["# vlae-bench report", ""]
    tex: list[str] = []
    for run in runs or []:
        md.append(f"- run `{run.get('run_id')}` ({run.get('status')}): `{run.get('command')}`")
    if runs:
        versions = runs[-1].get("versions", {})
        md += ["", "Versions: " + ", ".join(f"{k} {v}" for k, v in sorted(versions.items())), ""]
    kinds = sorted(set(agg["rate_kind"].dropna()) | set(split_level["rate_kind"].dropna()))
    notes = "; ".join(f"`{k}` = {RATE_KIND_LABELS.get(k, k)}" for k in kinds)
    if "coded" in kinds:
        notes += (
            ". Coded rates count every byte a classical codec writes, headers included; for "
            "learned codecs they count the entropy coder's payload, as CompressAI does, and "
            "the whole container (header and checksum too) is the container bpp"
        )
    if kinds:
        md.append(f"Rates: {notes}. Metrics are computed per image, then averaged over images.")

    def section(heading: str, table: pd.DataFrame) -> None:
        nonlocal md, tex
        md += ["", f"### {heading}", "", markdown_table(table)]
        tex += [f"% {heading}", latex_table(table)]

    if "arm" in frame and frame["arm"].notna().any():
        section("Arms: means over seeds (sd: spread over seeds)", arm_table(frame))
    beta_md, beta_files = beta_section(frame, out_dir, list(folders or [out_dir]), entropy)
    md += beta_md
    for (dataset, split), rows in split_level.groupby(["dataset", "split"], dropna=False):
        table = model_table(rows)
        md += ["", f"## {dataset} / {split}: models", "", markdown_table(table)]
        tex += [f"% {dataset} / {split}: models", latex_table(table)]
    extra_figures = []
    for dataset in sorted(set(agg["dataset"].dropna()) | set(split_level["dataset"].dropna())):
        rows_all = agg[agg["dataset"] == dataset]
        bits = bits_rows(rows_all, split_level[split_level["dataset"] == dataset])
        if len(bits) > 1:
            stem = out_dir / f"bits_per_dim_{slug(dataset)}"
            extra_figures += save_figure(bits_figure(bits, f"{dataset}: bits per dimension"), stem)
            table = bits.sort_values("bits_per_dim").rename(
                columns={"label": "method", "bits_per_dim": "bits/dim", "kind": "what it is"}
            )
            md += ["", f"## {dataset}: bits per dimension (lower is better)", "",
                   f"![bits/dim]({stem.name}.png)", "", markdown_table(table)]  # fmt: skip
            tex += [f"% {dataset}: bits per dimension", latex_table(table)]
        for image_set, rows in rows_all.groupby("image_set", sort=True):
            options = sorted(set(rows["items"].dropna()) - {""}) if "items" in rows else []
            view = f"{dataset}:{options[0]}" if options else dataset
            md += ["", f"## {view}, {image_set}", ""]
            for metric in ("psnr", "ms_ssim_db"):
                for path in figures.get((dataset, image_set, metric), []):
                    if path.suffix == ".png":
                        md.append(f"![{metric} vs bpp]({path.name})")
            lossless, lossy = rows[is_lossless(rows)], rows[~is_lossless(rows)]
            if not lossy.empty:
                section(f"{view}, {image_set}: lossy", _display(lossy, LOSSY_COLUMNS))
            if not lossless.empty:
                section(f"{view}, {image_set}: lossless", _display(lossless, LOSSLESS_COLUMNS))
            gaps = gap_table(rows)
            if not gaps.empty:
                section(f"{view}, {image_set}: coded rate against the stated rate "
                        "(gap = coded / stated − 1)", gaps)  # fmt: skip
            coded = lossy[lossy["rate_kind"] == "coded"]
            chosen = anchor or ("jpeg" if "jpeg" in set(coded["method"]) else None)
            if chosen and chosen in set(coded["method"]) and coded["method"].nunique() > 1:
                section(f"{view}, {image_set}: Bjøntegaard deltas against {chosen} "
                        "(PCHIP, negative = fewer bits; coded rates only)",
                        bd_table(coded, chosen))  # fmt: skip
            elif anchor:
                md += ["", f"(anchor '{anchor}' has no coded lossy curve here; no BD table)"]
    md += theory_md + throughput_md
    written = [out_dir / "report.md"]
    atomic_write(written[0], "\n".join(md) + "\n")
    if html:
        written.append(out_dir / "report.html")
        atomic_write(written[-1], html_document("\n".join(md), out_dir))
    if latex:
        written.append(out_dir / "report.tex")
        atomic_write(written[-1], latex_document(tex))
    figures_written = [p for paths in figures.values() for p in paths]
    return written + figures_written + extra_figures + beta_files + theory_files + throughput_files


def html_document(markdown_text: str, folder: Path) -> str:
    """The report as one self-contained HTML page: tables rendered, every PNG it shows
    embedded as a data URI (the page needs no other file)."""
    import base64
    import re

    import markdown

    def embed(match: re.Match) -> str:
        path = folder / match.group(2)
        if not path.is_file():
            return match.group(0)
        data = base64.b64encode(path.read_bytes()).decode()
        return f"![{match.group(1)}](data:image/png;base64,{data})"

    body = markdown.markdown(
        re.sub(r"!\[([^\]]*)\]\(([^)]+\.png)\)", embed, markdown_text), extensions=["tables"]
    )
    style = (
        "body{font-family:sans-serif;max-width:80rem;margin:2rem auto;padding:0 1rem}"
        "table{border-collapse:collapse;font-size:0.85rem;margin:1rem 0}"
        "td,th{border:1px solid #ccc;padding:0.2rem 0.5rem;text-align:right}"
        "img{max-width:100%}code{background:#f4f4f4}"
    )
    return (
        "<!DOCTYPE html>\n<html><head><meta charset='utf-8'><title>vlae-bench report</title>"
        f"<style>{style}</style></head><body>\n{body}\n</body></html>\n"
    )


def latex_document(tables: list[str]) -> str:
    """A complete LaTeX document holding the report's tables (booktabs, UTF-8)."""
    head = [
        r"\documentclass{article}", r"\usepackage[utf8]{inputenc}", r"\usepackage[T1]{fontenc}",
        r"\usepackage{booktabs}", r"\usepackage{newunicodechar}", r"\usepackage{graphicx}",
        r"\usepackage[margin=1.5cm,landscape]{geometry}",
        r"\newunicodechar{−}{\ensuremath{-}}", r"\newunicodechar{β}{\ensuremath{\beta}}",
        r"\newunicodechar{λ}{\ensuremath{\lambda}}", r"\newunicodechar{ø}{\o}",
        r"\begin{document}", r"\footnotesize",
    ]  # fmt: skip
    body = []
    for item in tables:
        if item.startswith("% "):
            body.append(r"\section*{" + latex_escape(item[2:]) + "}")
        else:
            body.append(r"\resizebox{\textwidth}{!}{" + item.strip() + "}")
    return "\n".join(head + body + [r"\end{document}", ""])


def latex_escape(text: str) -> str:
    for char, escaped in (("\\", r"\textbackslash{}"), ("&", r"\&"), ("%", r"\%"), ("$", r"\$"),
                          ("#", r"\#"), ("_", r"\_"), ("{", r"\{"), ("}", r"\}")):  # fmt: skip
        text = text.replace(char, escaped)
    return text
