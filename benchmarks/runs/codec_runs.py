"""Evaluating methods on a dataset into a run folder: what ``vlae-bench codecs`` does.

:func:`evaluate_to` plans the methods asked for, loads the items, opens the run store (which
refuses another command's folder and resumes this one's) and keeps every task's rows as the
evaluation path (:mod:`benchmarks.evaluation.engine`) yields them.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import psutil

from baselines.method import MethodRequest, Setting, plan
from benchmarks.datasets import DatasetView, NamedImage, is_image_dataset, load_items
from benchmarks.errors import BenchError
from benchmarks.evaluation.engine import run_tasks
from benchmarks.evaluation.workers import default_workers
from benchmarks.metrics import METRICS, column_info, metric_names
from benchmarks.runs.store import Job, RunStore
from vlae_models.train import resolve_device
from vlae_models.zoo import weights_digest


def evaluate_to(
    out: Path,
    dataset: str,
    methods: Sequence[str | MethodRequest],
    *,
    quality: str | None = None,
    metrics: Sequence[str] | None = None,
    split: str | None = None,
    data_dir: Path | None = None,
    limit: int | None = None,
    workers: int | None = None,
    device: str = "cpu",
    overwrite: bool = False,
    progress: bool = True,
    echo: Callable[[str], None] = print,
) -> RunStore:
    """Evaluate methods (``-c`` texts such as ``"jpeg=50"``, or :class:`MethodRequest` s) on a
    dataset into the run folder ``out`` (resuming it) and return the store. ``metrics``
    adds metrics beside the default set. An interrupt keeps every finished row; rerunning
    the same command resumes."""
    resolve_device(device)  # a device this machine lacks: one line, before any work
    settings, notes = plan(methods, quality)
    scored = metric_names(metrics)
    items = load_items(dataset, split=split, data_dir=data_dir, limit=limit)
    check_memory(items, workers, scored)
    view = DatasetView.parse(dataset)
    split = None if is_image_dataset(view.name) else split or "test"
    config = {
        "dataset": dataset, "split": split, "limit": limit, "device": device,
        "items": items_digest(items),
        "settings": [dataclasses.asdict(s) | {"weights": _weights(s)} for s in settings],
        **({"metrics": list(metrics)} if metrics else {}),
    }  # fmt: skip
    store = RunStore(out, Job("codecs", config), overwrite=overwrite)
    store.attrs["metric_columns"] = column_info(scored)
    for note in notes + store.notes:
        echo(f"note: {note}")
    with store.running() as run:
        common = {
            "dataset": view.name, "items": view.options, "split": split,
            "run_id": run["run_id"], "job_id": run["job_id"],
            "versions": json.dumps(run["versions"]),
        }  # fmt: skip
        try:
            for rows in run_tasks(items, settings, common=common, workers=workers,
                                 done=store.done(), device=device, metrics=scored,
                                 progress=progress):  # fmt: skip
                store.add(rows)
        except KeyboardInterrupt:
            echo(f"interrupted: {len(store.rows)} rows kept in {out}; rerun to resume")
            raise
    return store


# What coding and scoring one item holds at its peak, per byte of the item: the decoded
# image, a codec's own buffers, the metrics' pooled scales and tiles (measured: 5-6x on an
# 8000 x 8000 image, results/large-images/).
BYTES_PER_ITEM_BYTE = 8
MEMORY_SHARE = 0.8  # of the memory available now


def check_memory(
    items: Sequence[NamedImage], workers: int | None, metrics: Sequence[str] = ()
) -> None:
    """Refuse in one line, before any work, items that could not be coded and scored in the
    memory this machine has now (each worker holds one item at a time, and runs the asked
    metrics one after another: the hungriest one's activations count)."""
    if not items:
        return
    largest = max(items, key=lambda item: item.pixels.nbytes)
    at_once = min(workers or default_workers(), len(items))
    pixels = largest.pixels.shape[0] * largest.pixels.shape[1]
    networks = max((METRICS[name].bytes_per_pixel for name in metrics), default=0)
    need = (largest.pixels.nbytes * BYTES_PER_ITEM_BYTE + pixels * networks) * at_once
    have = psutil.virtual_memory().available
    if need > MEMORY_SHARE * have:
        shape = "x".join(map(str, largest.pixels.shape))
        raise BenchError(
            f"{largest.name} ({shape}) needs about {need / 2**30:.1f} GB to code and score "
            f"with {at_once} worker(s); {have / 2**30:.1f} GB are available"
            + ("; --workers 1 needs less" if at_once > 1 else "")
        )


def items_digest(items: Sequence[NamedImage]) -> str:
    """A digest of the items' names and pixels: the job's data, whatever its name."""
    digest = hashlib.sha256()
    for item in items:
        digest.update(item.name.encode() + b"\0")
        digest.update(memoryview(np.ascontiguousarray(item.pixels)).cast("B"))  # no copy
    return digest.hexdigest()[:16]


def _weights(setting: Setting) -> str | None:
    """The digest of a setting's weights file (:func:`vlae_models.zoo.weights_digest`), so a
    retrained checkpoint at the same path is a different job; None for methods without one."""
    return None if setting.source is None else weights_digest(setting.source)
