"""The tidy results table: its columns, an atomic on-disk store, and aggregation over images.

One row per (method, parameter value, image) -- or per split for model evaluations, with
``image == "__all__"``. A column that does not apply is NaN, never 0. A run directory holds
``results.parquet`` (the source of truth), ``results.csv`` (the same rows), ``run.json``
(command, versions, status) and whatever the report renders.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import pandas as pd

from benchmarks.errors import BenchError

# Identifying columns first, then measurements; see docs/results.md for each one's meaning.
ID_COLUMNS = [
    "dataset", "split", "method", "param", "value", "seed", "image", "rate_kind",
]  # fmt: skip
MEASURE_COLUMNS = [
    "bpp", "bits_per_dim", "rate_nats", "distortion_nats", "nll_nats", "kl_nats",
    "mse", "psnr", "ssim", "ms_ssim", "ms_ssim_db", "enc_s", "dec_s",
    "phase", "batch_size", "dtype", "images_per_s", "p50_ms", "p95_ms", "peak_mem_mb", "device",
]  # fmt: skip
META_COLUMNS = ["height", "width", "n_bytes", "run_id", "job_id", "versions"]
COLUMNS = ID_COLUMNS + MEASURE_COLUMNS + META_COLUMNS
RATE_KINDS = {"coded", "kl", "estimate", "fixed", "prior"}
ALL_IMAGES = "__all__"

PARQUET = "results.parquet"
CSV = "results.csv"
RUN_JSON = "run.json"

_VERSIONED = ["vlae-bench", "torch", "numpy", "pillow", "compressai", "pillow-jxl-plugin"]


def versions() -> dict[str, str]:
    """Versions of the packages that can change a number in the table."""
    found = {"python": platform.python_version()}
    for name in _VERSIONED:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return found


def new_run_id() -> str:
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ") + "-" + uuid.uuid4().hex[:6]


def make_frame(rows: Iterable[Mapping[str, Any]]) -> pd.DataFrame:
    """Rows -> DataFrame with every known column present (NaN where absent), known ones first."""
    frame = pd.DataFrame(list(rows))
    for column in COLUMNS:
        if column not in frame:
            frame[column] = (
                pd.NA if column in ID_COLUMNS + ["phase", "dtype", "device"] else float("nan")
            )
    bad_kinds = set(frame["rate_kind"].dropna()) - RATE_KINDS
    if bad_kinds:
        raise BenchError(f"unknown rate_kind {sorted(bad_kinds)}; allowed {sorted(RATE_KINDS)}")
    extra = [c for c in frame.columns if c not in COLUMNS]
    return frame[COLUMNS + extra]


def atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    """Write through a temporary file in the same folder, then rename over ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.close(fd)
    umask = os.umask(0)
    os.umask(umask)
    try:
        write(Path(tmp))
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp creates 0600; results are meant to be shared
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def write_results(frame: pd.DataFrame, out_dir: Path) -> None:
    """Store the table as Parquet and CSV, each replaced atomically."""
    frame = _normalise_types(frame)
    atomic_write(out_dir / PARQUET, lambda p: frame.to_parquet(p, index=False))
    atomic_write(out_dir / CSV, lambda p: frame.to_csv(p, index=False))


def _normalise_types(frame: pd.DataFrame) -> pd.DataFrame:
    """Make object columns Parquet-friendly: strings stay strings, config dicts become JSON."""
    frame = frame.copy()
    for column in frame.columns:
        if frame[column].dtype == object:
            frame[column] = frame[column].map(
                lambda v: json.dumps(v, sort_keys=True) if isinstance(v, dict | list) else v
            )
    return frame


def write_json(path: Path, payload: Mapping[str, Any]) -> None:
    text = json.dumps(payload, indent=2, sort_keys=True, default=str) + "\n"
    atomic_write(path, lambda p: p.write_text(text))


@contextmanager
def recorded_run(out_dir: Path, kind: str, **details: Any) -> Iterator[dict[str, Any]]:
    """Keep ``run.json`` for the run inside the block: command line, versions, git commit,
    then status (``complete``, ``interrupted`` or ``failed``) and wall time at the end.

    The block may add entries to the yielded dict (e.g. a row count); they are saved too.
    """
    info = {
        "run_id": new_run_id(),
        "kind": kind,
        "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
        "started": datetime.now(UTC).isoformat(timespec="seconds"),
        "status": "running",
        "versions": versions(),
        "git_commit": _git_commit(),
        **details,
    }
    write_json(out_dir / RUN_JSON, info)
    status, start = "failed", time.perf_counter()
    try:
        yield info
        status = "complete"
    except KeyboardInterrupt:
        status = "interrupted"
        raise
    finally:
        info.update(
            status=status,
            finished=datetime.now(UTC).isoformat(timespec="seconds"),
            wall_s=round(time.perf_counter() - start, 2),
        )
        write_json(out_dir / RUN_JSON, info)


def _git_commit() -> str | None:
    here = Path(__file__).resolve().parent
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=5
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() or None


def read_results(paths: Iterable[Path]) -> pd.DataFrame:
    """Load and concatenate stored results; each path is a run folder or a results file."""
    frames = []
    for path in paths:
        path = Path(path)
        file = path / PARQUET if path.is_dir() else path
        if not file.exists():
            raise BenchError(f"no results at {path} (expected {PARQUET} or {CSV})")
        try:
            frame = pd.read_parquet(file) if file.suffix == ".parquet" else pd.read_csv(file)
        except Exception as err:  # pyarrow and pandas raise many types for a damaged file
            raise BenchError(f"cannot read results file {file}: {err}") from err
        missing = {"method", "value", "rate_kind"} - set(frame.columns)
        if missing:
            raise BenchError(
                f"{file} is not a vlae-bench results table (missing {sorted(missing)})"
            )
        frames.append(frame)
    if not frames:
        raise BenchError("no results given")
    return make_frame(pd.concat(frames, ignore_index=True).to_dict("records"))


GROUP_COLUMNS = ["dataset", "split", "method", "param", "value", "rate_kind"]
MEAN_COLUMNS = [
    "bpp", "bits_per_dim", "rate_nats", "distortion_nats", "nll_nats", "kl_nats",
    "mse", "psnr", "ssim", "ms_ssim", "ms_ssim_db", "enc_s", "dec_s",
]  # fmt: skip


def aggregate(frame: pd.DataFrame) -> pd.DataFrame:
    """Mean over images per (dataset, split, method, param, value, rate_kind).

    Every metric is averaged per image (PSNR too, which is CompressAI's protocol, rather than
    the PSNR of the mean MSE); ``n_images`` says how many images went into each mean.
    """
    if frame.empty:
        return frame.assign(n_images=pd.Series(dtype=int))
    numeric = frame[MEAN_COLUMNS].apply(pd.to_numeric, errors="coerce")
    grouped = pd.concat([frame[GROUP_COLUMNS], numeric], axis=1).groupby(
        GROUP_COLUMNS, dropna=False, sort=False
    )
    means = grouped[MEAN_COLUMNS].mean()
    means["n_images"] = grouped.size()
    return means.reset_index().sort_values(["dataset", "method", "value"], ignore_index=True)
