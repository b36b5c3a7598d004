"""The one evaluation path: items x settings -> codings -> metrics -> result rows.

Every method (classical codec, learned codec, model checkpoint) is evaluated here, on the same
items, into rows of the same table. Work is split into tasks of (setting, a few items) and run
in a pool of worker processes, one torch thread each. A worker builds each method once and
calls its ``setup`` once (weights loaded once per process), then codes batches. Workers die
with the main process (``PR_SET_PDEATHSIG`` on Linux), so a ``kill -9`` leaves no orphans.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import multiprocessing
import os
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from pathlib import Path
from typing import Any

import numpy as np

from baselines.method import METHODS, Coding, Method, Setting, plan
from benchmarks.datasets import DatasetView, NamedImage, is_image_dataset, load_items
from benchmarks.errors import BenchError
from benchmarks.metrics import ImageMetrics
from benchmarks.runs import Job, RunStore

LN2 = math.log(2.0)
PIXELS_PER_TASK = 2**20  # small items (MNIST) are grouped, large ones (Kodak) go one by one
_BUILT: dict[Setting, Method] = {}  # this process's methods, built and set up once each
_DEVICE = "cpu"


def default_workers() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def rate_columns(nats: float, height: int, width: int, channels: int) -> dict[str, float]:
    """The one conversion of a rate in nats per image to the table's rate columns."""
    bits = nats / LN2
    return {
        "rate_nats": nats,
        "bpp": bits / (height * width),
        "bits_per_dim": bits / (height * width * channels),
    }


def method_for(setting: Setting) -> Method:
    if setting not in _BUILT:
        method = setting.build()
        method.setup(_DEVICE)
        _BUILT[setting] = method
    return _BUILT[setting]


Task = tuple[tuple[Setting, ...], list[NamedImage], frozenset[tuple[int, int]]]


def evaluate_items(
    settings: Sequence[Setting],
    items: Sequence[NamedImage],
    common: dict[str, Any],
    skip: frozenset[tuple[int, int]] = frozenset(),
) -> list[dict[str, Any]]:
    """Code ``items`` with each setting (the values of one method) and score every
    reconstruction; ``skip`` holds (setting index, item index) pairs already stored.

    The metrics' work on each original (its SSIM statistics) is done once for all settings.
    """
    rows = []
    scorers = [ImageMetrics(item.pixels, binary=item.binary) for item in items]
    for s_index, setting in enumerate(settings):
        todo = [i for i in range(len(items)) if (s_index, i) not in skip]
        if not todo:
            continue
        codings = method_for(setting).code([items[i].pixels for i in todo])
        for i, coding in zip(todo, codings, strict=True):
            scored = scorers[i](_checked(setting, items[i], coding))
            rows += _rows(setting, items[i], coding, scored, common)
    return rows


def _checked(setting: Setting, item: NamedImage, coding: Coding) -> np.ndarray:
    decoded = coding.reconstruction
    if decoded.shape != item.pixels.shape or decoded.dtype != np.uint8:
        raise BenchError(
            f"{setting.label} {setting.param}={setting.value:g} decoded {item.name} to "
            f"{decoded.dtype} {decoded.shape}, expected uint8 {item.pixels.shape}"
        )
    return decoded


def _rows(
    setting: Setting, item: NamedImage, coding: Coding, scored: dict[str, float], common: dict
) -> list[dict[str, Any]]:
    """One row per rate kind the coding states, all with the same distortion metrics."""
    height, width = item.pixels.shape[:2]
    return [
        {
            **common,
            "method": setting.label,
            "param": setting.param,
            "value": setting.value,
            "image": item.name,
            "rate_kind": kind,
            **rate_columns(nats, height, width, item.channels),
            **scored,
            "enc_s": coding.enc_s,
            "dec_s": coding.dec_s,
            "height": height,
            "width": width,
            "channels": item.channels,
            "n_bytes": coding.n_bytes,
            **coding.extra,
        }
        for kind, nats in coding.rates.items()
    ]


def _init_worker(device: str, in_pool: bool = True) -> None:
    global _DEVICE
    if in_pool:
        _die_with_parent()
    import torch

    torch.set_num_threads(1)
    _DEVICE = device


def _die_with_parent() -> None:
    """Ask Linux to SIGKILL this worker when the main process dies (no orphans after kill -9)."""
    try:
        import ctypes
        import signal

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
        if os.getppid() == 1:  # the parent died before prctl took effect
            os._exit(1)
    except (OSError, AttributeError):  # not Linux: the pool's own shutdown has to do
        pass


def tasks(
    items: Sequence[NamedImage], settings: Sequence[Setting], done: set[tuple[str, float, str]]
) -> list[Task]:
    """Work still to do, as (settings of one method, a chunk of items, pairs to skip) tasks;
    ``done`` holds the (label, value, image) triples already stored."""
    if not items:
        return []
    groups: dict[tuple[str, str | None], list[Setting]] = {}
    for setting in settings:
        groups.setdefault((setting.method, setting.source), []).append(setting)
    out: list[Task] = []
    for (method, _), group in groups.items():
        size = max(1, min(METHODS[method].max_items, PIXELS_PER_TASK // items[0].pixels.size))
        for start in range(0, len(items), size):
            chunk = list(items[start : start + size])
            skip = frozenset(
                (s, i)
                for s, setting in enumerate(group)
                for i, item in enumerate(chunk)
                if (setting.label, float(setting.value), item.name) in done
            )
            if len(skip) < len(group) * len(chunk):
                out.append((tuple(group), chunk, skip))
    return out


def evaluate(
    items: Sequence[NamedImage],
    settings: Sequence[Setting],
    *,
    common: dict[str, Any],
    workers: int | None = None,
    done: set[tuple[str, float, str]] = frozenset(),
    device: str = "cpu",
    progress: bool = True,
) -> Iterator[list[dict[str, Any]]]:
    """Yield the rows of each finished task as soon as it finishes.

    ``common`` goes into every row (dataset, split, run and job ids); ``done`` lists
    (label, value, image) triples already stored, so a resumed run evaluates only the rest.
    """
    from tqdm import tqdm

    todo = tasks(items, settings, done)
    bar = tqdm(total=sum(len(chunk) for _, chunk, _ in todo), desc="evaluate", unit="img",
               disable=not progress)  # fmt: skip
    workers = min(workers or default_workers(), max(len(todo), 1))
    try:
        if workers <= 1:
            _init_worker(device, in_pool=False)
            for group, chunk, skip in todo:
                yield evaluate_items(group, chunk, common, skip)
                bar.update(len(chunk))
            return
        context = multiprocessing.get_context("spawn")  # forking a torch process can hang
        with ProcessPoolExecutor(
            workers, mp_context=context, initializer=_init_worker, initargs=(device,)
        ) as pool:
            pending: dict[Future, int] = {
                pool.submit(evaluate_items, group, chunk, common, skip): len(chunk)
                for group, chunk, skip in todo
            }
            try:
                while pending:
                    finished, _ = wait(pending, return_when=FIRST_COMPLETED)
                    for future in finished:
                        bar.update(pending.pop(future))
                        yield future.result()
            finally:
                for future in pending:
                    future.cancel()
    finally:
        bar.close()
        _BUILT.clear()  # in-process methods hold weights; a later call loads afresh


def evaluate_to(
    out: Path,
    dataset: str,
    method_specs: Sequence[str],
    *,
    quality: str | None = None,
    split: str | None = None,
    data_dir: Path | None = None,
    limit: int | None = None,
    workers: int | None = None,
    device: str = "cpu",
    overwrite: bool = False,
    progress: bool = True,
    echo: Callable[[str], None] = print,
) -> RunStore:
    """Evaluate methods on a dataset into the run folder ``out`` (resuming it) and return the
    store. An interrupt keeps every finished row; rerunning the same command resumes."""
    settings, notes = plan(method_specs, quality)
    items = load_items(dataset, split=split, data_dir=data_dir, limit=limit)
    view = DatasetView.parse(dataset)
    split = None if is_image_dataset(view.name) else split or "test"
    config = {
        "dataset": dataset, "split": split, "limit": limit, "device": device,
        "items": items_digest(items),
        "settings": [dataclasses.asdict(s) | {"weights": weights_digest(s)} for s in settings],
    }  # fmt: skip
    store = RunStore(out, Job("codecs", config), overwrite=overwrite)
    for note in notes + store.notes:
        echo(f"note: {note}")
    with store.running() as run:
        common = {
            "dataset": view.name, "items": view.options, "split": split,
            "run_id": run["run_id"], "job_id": run["job_id"],
            "versions": json.dumps(run["versions"]),
        }  # fmt: skip
        try:
            for rows in evaluate(items, settings, common=common, workers=workers,
                                 done=store.done(), device=device, progress=progress):  # fmt: skip
                store.add(rows)
        except KeyboardInterrupt:
            echo(f"interrupted: {len(store.rows)} rows kept in {out}; rerun to resume")
            raise
    return store


def items_digest(items: Sequence[NamedImage]) -> str:
    """A digest of the items' names and pixels: the job's data, whatever its name."""
    digest = hashlib.sha256()
    for item in items:
        digest.update(item.name.encode() + b"\0" + item.pixels.tobytes())
    return digest.hexdigest()[:16]


def weights_digest(setting: Setting) -> str | None:
    """The SHA-256 of a setting's weights file, so a retrained checkpoint at the same path
    is a different job; None for methods without one."""
    if setting.source is None:
        return None
    from vlae_models.zoo import resolve

    path = resolve(setting.source)
    if not path.is_file():
        raise BenchError(f"{setting.label}: no such file {path}")
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]
