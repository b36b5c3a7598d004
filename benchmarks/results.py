"""The tidy results table: its columns, a checksummed on-disk store, and aggregation.

One row per (method, parameter value, image, rate kind) -- or per split for model
likelihood evaluations, with ``image == "__all__"``. A column that does not apply is NaN,
never 0. A run folder holds ``results.parquet`` (the source of truth), ``results.csv`` (the
same rows), ``results.sha256`` (their checksums, in ``sha256sum`` format, so
``sha256sum -c results.sha256`` checks them too), ``run.json`` (see :mod:`benchmarks.runs.store`)
and whatever the report renders. This module is the store's format, read and written; the
run store (:mod:`benchmarks.runs.store`) is the one writer that opens a folder for a job.
"""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from benchmarks.columns import (  # noqa: F401 - the table's columns, re-exported here
    ALL_IMAGES,
    COLUMNS,
    ID_COLUMNS,
    MEASURE_COLUMNS,
    META_COLUMNS,
    RATE_KINDS,
    SPLIT_BY,
    TEXT_COLUMNS,
)
from benchmarks.errors import BenchError
from vlae_models.files import atomic_write
from vlae_models.units import nats_to_bits

PARQUET = "results.parquet"
CSV = "results.csv"
CHECKSUMS = "results.sha256"
RUN_JSON = "run.json"


def rate_columns(nats: float, height: int, width: int, channels: int) -> dict[str, float]:
    """The one conversion of a rate in nats per image to the table's rate columns."""
    bits = nats_to_bits(nats)
    return {
        "rate_nats": nats,
        "bpp": bits / (height * width),
        "bits_per_dim": bits / (height * width * channels),
    }


def make_folder(out: Path) -> None:
    """Create an output folder; a path under a regular file is a one-line error."""
    for parent in [out, *out.parents]:
        if parent.exists() and not parent.is_dir():
            raise BenchError(f"cannot use {out} as an output folder: {parent} is a file")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise BenchError(f"cannot create output folder {out}: {err.strerror}") from err


def read_run(folder: Path) -> dict[str, Any] | None:
    """The folder's ``run.json`` (its job record, :mod:`benchmarks.runs.record`), or None."""
    return read_record(Path(folder) / RUN_JSON)


def read_record(path: Path) -> dict[str, Any] | None:
    """A job record (``run.json``, ``job.json``), or None; a damaged one is a one-line
    error."""
    if not path.exists():
        return None
    try:
        info = json.loads(path.read_text())
        if not isinstance(info, dict):
            raise ValueError("not a JSON object")
        return info
    except ValueError as err:
        raise BenchError(
            f"{path} is damaged ({err}); move it away, or start afresh (--overwrite; --fresh "
            "for train)"
        ) from err


def load_runs(folders: Iterable[Path]) -> list[dict[str, Any]]:
    """``run.json`` of each folder that has one (folders and results files alike)."""
    runs = []
    for path in folders:
        folder = Path(path) if Path(path).is_dir() else Path(path).parent
        info = read_run(folder)
        if info is not None:
            runs.append(info)
    return runs


def make_frame(rows: Iterable[Mapping[str, Any]]) -> pd.DataFrame:
    """Rows -> DataFrame with every known column present (NaN where absent), known ones first."""
    frame = pd.DataFrame(list(rows))
    for column in COLUMNS:
        if column not in frame:
            frame[column] = pd.NA if column in TEXT_COLUMNS else float("nan")
    bad_kinds = set(frame["rate_kind"].dropna()) - RATE_KINDS
    if bad_kinds:
        raise BenchError(f"unknown rate_kind {sorted(bad_kinds)}; allowed {sorted(RATE_KINDS)}")
    extra = [c for c in frame.columns if c not in COLUMNS]
    return frame[COLUMNS + extra]


def write_results(frame: pd.DataFrame, out_dir: Path) -> None:
    """Store the table as Parquet and CSV, each replaced atomically, with their checksums.

    The checksum file first lists both the old and the new digests, then only the new ones,
    so a crash between the renames never makes a good file look damaged.
    """
    frame = _normalise_types(frame)
    buffer = io.BytesIO()
    frame.to_parquet(buffer, index=False)
    blobs = {PARQUET: buffer.getvalue(), CSV: frame.to_csv(index=False).encode()}
    new = {name: hashlib.sha256(blob).hexdigest() for name, blob in blobs.items()}
    old = _read_checksums(out_dir)
    atomic_write(out_dir / CHECKSUMS, _checksum_text({n: {new[n], *old.get(n, ())} for n in new}))
    for name, blob in blobs.items():
        atomic_write(out_dir / name, blob)
    atomic_write(out_dir / CHECKSUMS, _checksum_text({n: {d} for n, d in new.items()}))


def _checksum_text(digests: dict[str, set[str]]) -> str:
    return "".join(f"{d}  {name}\n" for name in sorted(digests) for d in sorted(digests[name]))


def _read_checksums(folder: Path) -> dict[str, set[str]]:
    path = folder / CHECKSUMS
    if not path.exists():
        return {}
    found: dict[str, set[str]] = {}
    for line in path.read_text().splitlines():
        digest, _, name = line.partition("  ")
        if name:
            found.setdefault(name, set()).add(digest)
    return found


def verify(file: Path, unverified_ok: bool = False) -> bool:
    """Refuse a results file whose SHA-256 is not the one its folder's checksum file lists;
    True when it was checked. A folder without a checksum file cannot be checked: refused,
    unless ``unverified_ok`` (the report then says so), so that a deleted checksum file can
    never turn integrity checking off silently."""
    if not (file.parent / CHECKSUMS).exists():
        if unverified_ok:
            return False
        raise BenchError(
            f"{file.parent / CHECKSUMS} is missing, so {file.name} cannot be verified; restore "
            "it (or rerun the command that made the table), or render it marked unverified "
            "(report --unverified)"
        )
    listed = _read_checksums(file.parent).get(file.name)
    if listed is None:
        raise BenchError(f"{file} is not listed in {file.parent / CHECKSUMS}")
    digest = hashlib.sha256(file.read_bytes()).hexdigest()
    if digest not in listed:
        raise BenchError(
            f"{file} fails its checksum in {CHECKSUMS} (damaged or edited); rerun the command "
            "that made it, or restore it"
        )
    return True


def _normalise_types(frame: pd.DataFrame) -> pd.DataFrame:
    """Make object columns Parquet-friendly: strings stay strings, config dicts become JSON."""
    frame = frame.copy()
    for column in frame.columns:
        if frame[column].dtype == object:
            frame[column] = frame[column].map(
                lambda v: json.dumps(v, sort_keys=True) if isinstance(v, dict | list) else v
            )
    return frame


def read_results(paths: Iterable[Path], unverified_ok: bool = False) -> pd.DataFrame:
    """Load, verify and concatenate stored results; each path is a run folder or a file.

    Every results file of a folder is verified against its checksums (the CSV beside the
    Parquet too: it is what people open). A table without checksums is refused, or with
    ``unverified_ok`` read and listed in ``frame.attrs["unverified"]``."""
    frames, unverified = [], []
    for path in paths:
        path = Path(path)
        file = path / PARQUET if path.is_dir() else path
        if not file.exists():
            raise BenchError(f"no results at {path} (expected {PARQUET} or {CSV})")
        if not verify(file, unverified_ok):
            unverified.append(str(file))
        beside = file.parent / (CSV if file.name == PARQUET else PARQUET)
        if beside.exists() and beside.name in (CSV, PARQUET) and file.name in (CSV, PARQUET):
            verify(beside, unverified_ok)
        try:
            frame = pd.read_parquet(file) if file.suffix == ".parquet" else pd.read_csv(file)
        except Exception as err:  # pyarrow and pandas raise many types for a damaged file
            raise BenchError(f"cannot read results file {file}: {err}") from err
        missing = {"method", "value", "rate_kind"} - set(frame.columns)
        if missing:
            raise BenchError(
                f"{file} is not a vlae-bench results table (missing {sorted(missing)})"
            )
        frames.append(frame.assign(source=str(path)))
    if not frames:
        raise BenchError("no results given")
    attrs: dict[str, Any] = {}
    for part in frames:
        attrs = merge_attrs(attrs, part.attrs)
    frame = make_frame(pd.concat(frames, ignore_index=True).to_dict("records"))
    frame.attrs = {**attrs, **({"unverified": unverified} if unverified else {})}
    refuse_duplicates(frame)
    return frame


def merge_attrs(a: Mapping[str, Any], b: Mapping[str, Any]) -> dict[str, Any]:
    """The table metadata of two tables combined: the union of their metric columns (a
    column that one calls better higher and the other lower is refused)."""
    columns = dict(a.get("metric_columns") or {})
    for column, info in (b.get("metric_columns") or {}).items():
        if column in columns and columns[column].get("better") != info.get("better"):
            raise BenchError(
                f"column {column!r} is better {columns[column].get('better')} in one table and "
                f"{info.get('better')} in another; they measure different things"
            )
        columns[column] = dict(info)
    return {**a, **b, "metric_columns": columns} if columns else {**a, **b}


def row_key(frame: pd.DataFrame) -> list[str]:
    """Columns that identify a row: one measurement per (method, value, image, ...)."""
    extra = [c for c in ("estimator", "iw_samples", "n_examples", "checkpoint") if c in frame]
    return GROUP_COLUMNS + [c for c in SPLIT_BY if c in frame] + ["image"] + extra


def refuse_duplicates(frame: pd.DataFrame) -> None:
    """Refuse a table in which one measurement appears twice (the same runs given twice, or
    overlapping runs): averaging would count those images twice."""
    keys = frame[row_key(frame)].astype(str)
    twice = keys.duplicated(keep=False)
    if not twice.any():
        return
    counts = keys[twice].apply(tuple, axis=1).value_counts()
    first, copies = dict(zip(keys.columns, counts.index[0], strict=True)), int(counts.iloc[0])
    where = sorted(frame.loc[twice, "source"].dropna().unique()) if "source" in frame else []
    raise BenchError(
        f"{first['method']} {first['param']}={first['value']} on image {first['image']} is "
        f"stored {copies} times (in {', '.join(where) or 'one table'}); combine runs that "
        "do not overlap"
    )


GROUP_COLUMNS = ["dataset", "split", "method", "param", "value", "rate_kind"]
MEAN_COLUMNS = [
    "bpp", "bits_per_dim", "rate_nats", "distortion_nats", "nll_nats", "kl_nats",
    "mse", "psnr", "ssim", "ms_ssim", "ms_ssim_db", "bit_error_rate", "enc_s", "dec_s",
]  # fmt: skip


def aggregate(frame: pd.DataFrame, extra: Sequence[str] = ()) -> pd.DataFrame:
    """Mean over images per (dataset, split, method, param, value, rate_kind), and per seed,
    phase, batch size, dtype and device where the table has them; ``extra`` names more
    metric columns to average (a user's metric).

    Every metric is averaged per image (PSNR too, which is CompressAI's protocol, rather than
    the PSNR of the mean MSE); exactly reconstructed images enter the PSNR mean at
    :func:`psnr_ceiling` and are counted in ``n_exact``, and a group in which every image is
    exact has an infinite PSNR (lossless). ``n_images`` counts distinct images, ``image_set`` names
    the set (its size and a digest of the names): curves with different image sets are not
    comparable, and the report keeps them apart.
    """
    if frame.empty:
        return frame.assign(n_images=pd.Series(dtype=int), image_set=pd.Series(dtype=str))
    group = GROUP_COLUMNS + [c for c in SPLIT_BY if c in frame and frame[c].notna().any()]
    means_of = MEAN_COLUMNS + [c for c in extra if c in frame and c not in MEAN_COLUMNS]
    numeric = frame[means_of].apply(pd.to_numeric, errors="coerce")
    if "container_bytes" in frame:  # learned codecs: the whole stream, beside the payload
        pixels = pd.to_numeric(frame["height"]) * pd.to_numeric(frame["width"])
        numeric["container_bpp"] = pd.to_numeric(frame["container_bytes"]) * 8 / pixels
    exact = np.isinf(numeric["psnr"])
    numeric["psnr"] = numeric["psnr"].where(~exact, psnr_ceiling(frame))
    numeric["n_exact"] = exact.astype(float)
    channels = pd.to_numeric(frame["channels"], errors="coerce")
    keyed = pd.concat([frame[group + ["image"]], numeric, channels], axis=1)
    grouped = keyed.groupby(group, dropna=False, sort=False)
    means = grouped[[c for c in numeric if c != "n_exact"]].mean()
    means["n_exact"] = grouped["n_exact"].sum().astype(int)
    means.loc[means["n_exact"] == grouped.size(), "psnr"] = np.inf  # every image exact: lossless
    means["channels"] = grouped["channels"].max()
    means["n_images"] = grouped["image"].nunique()
    means["image_set"] = [
        image_set_label(images, _option(key, group))
        for key, images in grouped["image"].agg(list).items()
    ]
    order = ["dataset", "method", "value"]
    return means.reset_index().sort_values(order, ignore_index=True)


def psnr_ceiling(frame: pd.DataFrame) -> pd.Series:
    """Per row, the PSNR of the smallest error an 8-bit image can have: one level in one
    sample, MSE = 1 / (H W C). An exact reconstruction among lossy ones is averaged at this
    value (77.1 dB at 28 x 28 gray, 97.2 dB for a Kodak image) instead of making the mean
    infinite; ``n_exact`` says how many there were."""
    samples = frame["height"] * frame["width"] * frame["channels"].fillna(3)
    return 10.0 * np.log10(255.0**2 * samples.astype(float))


def _option(key: tuple, group: list[str]) -> str:
    """The ``items`` option (``crop=128``, ``patches=64``...) of an aggregate's group key."""
    value = key[group.index("items")] if "items" in group else ""
    return value if isinstance(value, str) else ""


def image_set_label(images: Iterable[str], items: str = "") -> str:
    """ "N images, set DIGEST": the digest covers the names and the items option, so the
    crops of a dataset are another set than its whole images, though their names agree."""
    names = sorted(set(map(str, images)))
    if names == [ALL_IMAGES]:
        return "split"
    text = "\n".join(names) + (f"\n@{items}" if items else "")
    digest = hashlib.sha256(text.encode()).hexdigest()[:6]
    return f"{len(names)} image{'s' if len(names) != 1 else ''}, set {digest}"
