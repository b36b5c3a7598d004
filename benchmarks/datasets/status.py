"""A table saying where each registered dataset's files were found and whether they verify."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import pandas as pd

from benchmarks.datasets.errors import DatasetError
from benchmarks.datasets.fetch import data_root_candidates, find_local, summarize, verify_file
from benchmarks.datasets.images import EMBEDDED_NAMES
from benchmarks.datasets.registry import SPECS, DatasetSpec, FileSpec

COLUMNS = ["name", "kind", "source", "location", "files", "verified", "detail"]


def dataset_status(data_dir: Path | None = None, verify: bool = True) -> pd.DataFrame:
    """One row per registered dataset; downloads nothing.

    Columns: name; kind ("images"/"arrays"); source (the root that has every file: "--data-dir",
    "VLAE_BENCH_DATA", "cache", or "embedded", else "missing"); location (that folder, or the
    most complete partial one, or "-"); files ("present/needed"); verified (True/False after
    checking checksums, None when nothing was checked); detail (what is missing or wrong).
    """
    roots = data_root_candidates(data_dir)
    rows = [_row(spec, roots, verify) for spec in SPECS.values()]
    return pd.DataFrame(rows, columns=COLUMNS)


def _row(spec: DatasetSpec, roots: list[tuple[str, Path]], verify: bool) -> dict[str, object]:
    row: dict[str, object] = {"name": spec.name, "kind": spec.kind}
    if spec.folder is None:
        count = len(EMBEDDED_NAMES)
        detail = "photos shipped with scikit-image and scikit-learn"
        return row | _cells("embedded", "-", count, count, None, detail)

    needed = len(spec.resources)
    best: tuple[int, Path, list[str]] | None = None  # most complete partial root
    for label, root in roots:
        folder = root / spec.folder
        found = {r.key: find_local(r, folder) for r in spec.resources}
        missing = [r.canonical_name for r in spec.resources if found[r.key] is None]
        if not missing:
            verified, detail = _verify(found.values()) if verify else (None, "not verified")
            return row | _cells(label, str(folder), needed, needed, verified, detail)
        present = needed - len(missing)
        if present and (best is None or present > best[0]):
            best = (present, folder, missing)

    if best is None:
        tried = ", ".join(label for label, _ in roots)
        detail = f"not in any root ({tried}); downloadable from {spec.source_url}"
        return row | _cells("missing", "-", 0, needed, None, detail)
    present, folder, missing = best
    return row | _cells(
        "missing", str(folder), present, needed, None, f"missing {summarize(missing)}"
    )


def _verify(found: Iterable[tuple[Path, FileSpec] | None]) -> tuple[bool, str]:
    bad = []
    for path, file_spec in filter(None, found):
        try:
            verify_file(path, file_spec)
        except DatasetError:
            bad.append(path.name)
    if bad:
        return False, f"checksum mismatch: {summarize(bad)}"
    return True, "checksums match"


def _cells(
    source: str, location: str, present: int, needed: int, verified: bool | None, detail: str
) -> dict[str, object]:
    return {
        "source": source,
        "location": location,
        "files": f"{present}/{needed}",
        "verified": verified,
        "detail": detail,
    }
