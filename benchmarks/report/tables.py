"""The report's tables, computed from aggregated rows: per-arm means over seeds, model
evaluations, lossy and lossless tables, Bjøntegaard deltas, coded against stated rates, and
the bars of the bits/dim figure."""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import pandas as pd

from benchmarks.analysis.bd import bd_quality, bd_rate
from benchmarks.errors import BenchError
from benchmarks.report.labels import RATE_KIND_LABELS
from benchmarks.results import ALL_IMAGES, aggregate

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
    "method": "method", "checkpoint_name": "checkpoint", "value": "β", "rate_kind": "rate kind",
    "estimator": "NLL estimator", "iw_samples": "k", "nll_nats": "NLL [nats]",
    "bits_per_dim": "bits/dim",
    "neg_elbo_nats": "−ELBO [nats]", "rate_nats": "rate [nats]",
    "distortion_nats": "distortion [nats]", "active_units": "active units",
    "mutual_info_nats": "I(x;z) [nats]", "perplexity": "perplexity",
    "codebook_usage": "codebook usage", "n_examples": "images",
}  # fmt: skip
NO_CHECKPOINT = "no checkpoint"  # a split-level row's checkpoint, where none was recorded
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


def name_checkpoints(split_level: pd.DataFrame) -> pd.DataFrame:
    """The split-level rows with a ``checkpoint_name`` where one method at one β was
    evaluated from several checkpoints (``vlae-binarized-mnist-10k``), NaN elsewhere: two
    trainings of one model stay two rows and two bars."""
    named = split_level.assign(checkpoint_name=np.nan)
    if "checkpoint" not in split_level or split_level.empty:
        return named
    refs = split_level["checkpoint"].fillna(NO_CHECKPOINT).astype(str)
    keys = [split_level[c] for c in ("method", "value") if c in split_level]
    several = refs.groupby(keys, dropna=False).transform("nunique") > 1
    named["checkpoint_name"] = named["checkpoint_name"].astype(object)
    for _, group in refs[several].groupby([k[several] for k in keys], dropna=False):
        names = distinguishing_names(list(group.unique()))
        named.loc[group.index, "checkpoint_name"] = group.map(names)
    return named


def distinguishing_names(refs: list[str]) -> dict[str, str]:
    """A short name for each checkpoint reference that still tells them apart: ``zoo:NAME``
    as NAME, one path as its run folder, several by the folders in which they differ
    (``sweep/vlae-s1/train/checkpoint.safetensors`` as ``vlae-s1``)."""
    names = {r: r.removeprefix("zoo:") for r in refs if r.startswith("zoo:") or r == NO_CHECKPOINT}
    paths = {r: Path(r).parts for r in refs if r not in names}
    if len(paths) == 1:
        ((ref, parts),) = paths.items()
        names[ref] = parts[-2] if len(parts) > 1 else ref
    elif paths:
        parts = list(paths.values())
        head = len(os.path.commonprefix(parts))
        tail = min(len(os.path.commonprefix([p[::-1] for p in parts])),
                   min(map(len, parts)) - head)  # fmt: skip
        names |= {r: "/".join(p[head : len(p) - tail]) for r, p in paths.items()}
    if len(set(names.values())) < len(refs) or "" in names.values():
        return {r: r for r in refs}  # no shorter names tell them apart: the references
    return names


def model_table(frame: pd.DataFrame) -> pd.DataFrame:
    """Split-level model evaluations: the columns that some row fills, in a fixed order."""
    columns = {k: v for k, v in MODEL_COLUMNS.items() if k in frame and frame[k].notna().any()}
    order = [c for c in ("dataset", "split", "method", "checkpoint_name", "value", "rate_kind")
             if c in frame]  # fmt: skip
    table = frame.sort_values(order)[list(columns)]
    if "checkpoint_name" in table:  # named only where a method had several checkpoints
        table["checkpoint_name"] = table["checkpoint_name"].fillna("")
    return table.rename(columns=columns)


def display_table(agg: pd.DataFrame, columns: dict[str, str]) -> pd.DataFrame:
    """The aggregated rows with the ``columns`` some row fills, renamed for people."""
    table = agg.assign(enc_ms=agg["enc_s"] * 1e3, dec_ms=agg["dec_s"] * 1e3)
    shown = table.notna().any() & ~((table == 0).all() & (table.columns == "n_exact"))
    keep = {k: v for k, v in columns.items() if k in ("method", "value") or shown[k]}
    return table[list(keep)].rename(columns=keep)


BD_COLUMNS = ("BD-rate PSNR [%]", "BD-PSNR [dB]", "BD-rate MS-SSIM [%]")


def bd_table(agg: pd.DataFrame, anchor: str, extra: dict[str, str] | None = None) -> pd.DataFrame:
    """BD-rate and BD-PSNR of every lossy coded curve against the anchor's curve, and for
    each ``extra`` metric column (``{column: "higher" | "lower"}``) its BD-rate and its
    BD-quality (the gain at equal rate, positive when the curve is better)."""
    deltas = [
        ("BD-rate PSNR [%]", "rate", "psnr", "higher"),
        ("BD-PSNR [dB]", "quality", "psnr", "higher"),
        ("BD-rate MS-SSIM [%]", "rate", "ms_ssim_db", "higher"),
    ]
    for column, better in (extra or {}).items():
        deltas += [(f"BD-rate {column} [%]", "rate", column, better),
                   (f"BD-{column} gain", "quality", column, better)]  # fmt: skip
    curves = {m: rows.sort_values("bpp") for m, rows in agg.groupby("method")}
    base = curves[anchor]
    rows = []
    for method, curve in curves.items():
        if method == anchor:
            continue
        row = {"method": method, "anchor": anchor}
        if len(curve) < 2:
            one_point = "n/a (one point: BD needs a curve)"
            rows.append({**row, **{name: one_point for name, *_ in deltas}})
            continue
        for name, kind, column, better in deltas:
            args = (base["bpp"], base[column], curve["bpp"], curve[column])
            if base[column].isna().any() or curve[column].isna().any():
                row[name] = f"n/a ({undefined(column)})"
                continue
            try:
                row[name] = bd_rate(*args) if kind == "rate" else bd_quality(*args, better)
            except BenchError as err:
                row[name] = f"n/a ({err})"
        rows.append(row)
    return pd.DataFrame(rows)


def undefined(column: str) -> str:
    """Why a metric has no value for some image: its true reason, for an n/a cell."""
    return UNDEFINED.get(column, f"{column} is not defined for some of these images")


UNDEFINED = {
    "ms_ssim_db": "MS-SSIM needs images of at least 161 px a side",
    "ms_ssim": "MS-SSIM needs images of at least 161 px a side",
    "ssim": "SSIM needs images of at least 11 px a side",
    "psnr": "PSNR is not defined for binary images",
}
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


def bits_rows(per_image: pd.DataFrame, split_level: pd.DataFrame) -> pd.DataFrame:
    """Lossless codes and likelihood bounds of one dataset, in bits/dim, for one figure; every
    bar says how many images it measured, and its β where a method was measured at several."""
    parts = []
    lossless = per_image[is_lossless(per_image) & per_image["bits_per_dim"].notna()]
    for row in lossless.to_dict("records"):
        n = f"{row.get('n_images', 0):g} images"
        where = "whole split as one image" if row.get("items") == "mosaic" else f"per image, {n}"
        if str(row["method"]).startswith("bb-ans"):  # chained messages, not one file per image
            where = f"chained, {n}, initial bits counted"
        kind = RATE_KIND_LABELS.get(row["rate_kind"], row["rate_kind"])
        label = f"{row['method']} ({where})"
        parts.append({"label": label, "bits_per_dim": row["bits_per_dim"], "kind": kind})
    swept = split_level.groupby("method")["value"].nunique() if len(split_level) else {}
    for row in split_level.to_dict("records"):
        if not np.isfinite(float(row.get("bits_per_dim", np.nan))):
            continue
        estimator = row.get("estimator") or "elbo"
        subset = f", {row['n_examples']:g} images"
        if row.get("param") == "beta" and swept.get(row["method"], 0) > 1:
            subset += f", β={row['value']:g}"
        if row["rate_kind"] in ("fixed", "prior"):
            bars = [(f"{row['rate_kind']} code + distortion", row["bits_per_dim"])]
        else:
            bars = [(estimator_label(estimator, row.get("iw_samples")), row["bits_per_dim"])]
            if estimator == "iwae" and np.isfinite(float(row.get("elbo_bits_per_dim", np.nan))):
                bars.append(("−ELBO", row["elbo_bits_per_dim"]))  # the same images' bound
        kind = "exact likelihood" if estimator == "exact" else "likelihood bound"
        name = row.get("checkpoint_name")
        checkpoint = f" [{name}]" if isinstance(name, str) else ""
        for what, bits in bars:
            label = f"{row['method']}{checkpoint} ({what}{subset})"
            parts.append({"label": label, "bits_per_dim": bits, "kind": kind})
    return pd.DataFrame(parts).drop_duplicates("label")


def estimator_label(estimator: str, k: float | None) -> str:
    if estimator == "iwae":
        return f"IWAE NLL, k={k:g}" if k is not None and k == k else "IWAE NLL"
    return {"elbo": "−ELBO", "exact": "exact NLL"}.get(estimator, estimator)
