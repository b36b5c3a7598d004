"""Render stored results as a Markdown report (and HTML, LaTeX) with figures.

The report reads only the results table and ``run.json`` files: it can be re-rendered at any
time, and several runs can be combined into one report. Per-image rows (codecs, and models
run as methods) are averaged per dataset and image set: curves measured on different images
get separate sections, never one mean. Split-level model evaluations (``image == "__all__"``)
get their own tables. Where a dataset has lossless codes or likelihood bounds, one bits/dim
figure puts them side by side, each labelled with its rate kind. Metric columns the table
records beyond the built-in ones (a user's metric) get RD figures and BD-rates of their own.
"""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd

from benchmarks.report.beta import beta_section
from benchmarks.report.format import html_document, latex_document, latex_table, markdown_table
from benchmarks.report.labels import RATE_KIND_LABELS, extra_axes
from benchmarks.report.perception import matched, perception_figure, perceptual_column
from benchmarks.report.plots import bits_figure, rd_plots, save_figure, slug
from benchmarks.report.rd_theory import is_rd_theory, rd_theory_section
from benchmarks.report.tables import (
    LOSSLESS_COLUMNS,
    LOSSY_COLUMNS,
    arm_table,
    bd_table,
    bits_rows,
    display_table,
    gap_table,
    is_lossless,
    model_table,
    name_checkpoints,
)
from benchmarks.report.throughput import is_throughput, throughput_section
from benchmarks.results import ALL_IMAGES, aggregate, make_folder
from vlae_models.files import atomic_write


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
    make_folder(out_dir)  # a path under a regular file is a one-line error
    timed = is_throughput(frame)
    throughput_md, throughput_files = throughput_section(frame[timed], out_dir)
    theory = is_rd_theory(frame)
    theory_md, theory_files = rd_theory_section(frame[theory], out_dir)
    extra = {c: b for c, b in extra_axes(frame.attrs).items() if c in frame}
    draws = (
        set(frame.loc[frame["decoded_as"] == "draw", "method"]) if "decoded_as" in frame else set()
    )
    frame = frame[~timed & ~theory]
    split_level = name_checkpoints(frame[frame["image"] == ALL_IMAGES])
    agg = aggregate(frame[frame["image"] != ALL_IMAGES], extra=list(extra))
    figures = rd_plots(agg, out_dir, extra)
    md = ["# vlae-bench report", ""]
    for note in frame.attrs.get("notes", []):
        md += [f"> **Note:** {note}", ""]
    if frame.attrs.get("unverified"):
        files = ", ".join(f"`{f}`" for f in frame.attrs["unverified"])
        md += [f"**Unverified:** {files} had no checksums (`results.sha256`): nothing shows "
               "that these numbers are the ones their command wrote.", ""]  # fmt: skip
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
    if len(agg):
        md += ["", "Sections are per image set (\"N images, set 1a2b3c\": a digest of the "
               "images' names and options): curves measured on other images are never "
               "averaged or drawn together."]  # fmt: skip

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
            for metric in ("psnr", "ms_ssim_db", *extra):
                for path in figures.get((dataset, image_set, metric), []):
                    if path.suffix == ".png":
                        md.append(f"![{metric} vs bpp]({path.name})")
            md += perception_part(rows, draws, out_dir, f"{view}, {image_set}", extra_figures)
            drawn = sorted(draws & set(rows["method"]))
            if drawn:
                md += ["", f"*{', '.join(drawn)}: the decoded image is a draw from p(x | z) "
                       "(seed 0), not the decoder's mean: what its decoder produces, scored at "
                       "the distortion of a sample.*"]  # fmt: skip
            lossless, lossy = rows[is_lossless(rows)], rows[~is_lossless(rows)]
            if not lossy.empty:
                columns = with_extra(LOSSY_COLUMNS, extra)
                section(f"{view}, {image_set}: lossy", display_table(lossy, columns))
            if not lossless.empty:
                section(f"{view}, {image_set}: lossless", display_table(lossless, LOSSLESS_COLUMNS))
            gaps = gap_table(rows)
            if not gaps.empty:
                section(f"{view}, {image_set}: coded rate against the stated rate "
                        "(gap = coded / stated − 1)", gaps)  # fmt: skip
            coded = lossy[lossy["rate_kind"] == "coded"]
            chosen = anchor or ("jpeg" if "jpeg" in set(coded["method"]) else None)
            if chosen and chosen in set(coded["method"]) and coded["method"].nunique() > 1:
                section(f"{view}, {image_set}: Bjøntegaard deltas against {chosen} "
                        "(PCHIP, negative = fewer bits; coded rates only)",
                        bd_table(coded, chosen, extra))  # fmt: skip
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
        atomic_write(written[-1], latex_document(tex, figures=figure_links(md)))
    figures_written = [p for paths in figures.values() for p in paths]
    return written + figures_written + extra_figures + beta_files + theory_files + throughput_files


def perception_part(
    rows: pd.DataFrame, draws: set[str], out_dir: Path, view: str, written: list[Path]
) -> list[str]:
    """The perception–distortion figure and its table for one image set, where a
    perceptual column was scored (:mod:`benchmarks.report.perception`)."""
    column = perceptual_column(rows)
    points = matched(rows, column, draws) if column else pd.DataFrame()
    fig = perception_figure(points, column, f"{view}: perception–distortion") if column else None
    if fig is None:
        return []
    stem = out_dir / f"perception_{column}_{slug(view)}"
    written += save_figure(fig, stem)
    table = points.sort_values(["bpp", "family", "psnr"]).rename(columns={"bpp": "bpp (matched)"})
    return ["", f"Perception–distortion plane at matched rates ({column} against PSNR; each "
            "method interpolated in log-rate between its settings, never extrapolated; the "
            "lines join each family's points that no other point of the family beats on "
            "both):", "", f"![perception–distortion]({stem.name}.png)", "",
            markdown_table(table)]  # fmt: skip


def with_extra(columns: dict[str, str], extra: dict[str, str]) -> dict[str, str]:
    """The table's columns with the extra metric columns after the built-in metrics."""
    keys = list(columns)
    at = keys.index("enc_ms") if "enc_ms" in keys else len(keys)
    shown = {c: f"{c} ({'↑' if b == 'higher' else '↓'})" for c, b in extra.items()}
    return {**dict(list(columns.items())[:at]), **shown, **dict(list(columns.items())[at:])}


def figure_links(md: list[str]) -> list[tuple[str, str]]:
    """(caption, PNG file) of every figure the Markdown report shows, in order."""
    found = re.findall(r"!\[([^\]]*)\]\(([^)]+\.png)\)", "\n".join(md))
    return list(dict.fromkeys(found))
