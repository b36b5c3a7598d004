"""The one evaluation path: items x settings -> codings -> metrics -> result rows.

Every method (classical codec, learned codec, model checkpoint, a user's plugin) is evaluated
here, on the same items, into rows of the same table. Work is split into tasks of (the
settings of one method, a few items) and run in a pool of worker processes
(:mod:`benchmarks.evaluation.workers`). A worker builds each method once and calls its
``setup`` once (weights loaded once per process), then codes batches; every reconstruction
is checked (shape, dtype) and scored by the asked metrics (:class:`benchmarks.metrics.Scorer`).
Rows go to the caller as each task finishes; the run store keeps them
(:func:`benchmarks.runs.codec_runs.evaluate_to`).
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from typing import Any

import numpy as np
from tqdm import tqdm

from baselines.method import METHODS, Coding, Method, MethodError, Setting
from benchmarks.datasets import NamedImage
from benchmarks.errors import BenchError
from benchmarks.evaluation.workers import (
    DEVICE,
    check_started,
    default_workers,
    in_this_process,
    init_worker,
    spawnable_main,
)
from benchmarks.metrics import DEFAULT, Scorer
from benchmarks.results import ID_COLUMNS, RATE_KINDS, rate_columns
from vlae_models.errors import ModelError
from vlae_models.registry import PluginError, portable_origins

PATH_COLUMNS = {"bpp", "bits_per_dim", "rate_nats", "enc_s", "dec_s", "height", "width",
                "channels", "n_bytes", "run_id", "job_id", "versions", "items"}  # fmt: skip
PIXELS_PER_TASK = 2**20  # small items (MNIST) are grouped, large ones (Kodak) go one by one
_BUILT: dict[Setting, Method] = {}  # this process's methods, built and set up once each


def method_for(setting: Setting) -> Method:
    if setting not in _BUILT:
        method = setting.build()
        method.setup(DEVICE["name"])
        _BUILT[setting] = method
    return _BUILT[setting]


Task = tuple[tuple[Setting, ...], list[NamedImage], frozenset[tuple[int, int]]]


def evaluate_items(
    settings: Sequence[Setting],
    items: Sequence[NamedImage],
    common: dict[str, Any],
    skip: frozenset[tuple[int, int]] = frozenset(),
    metrics: Sequence[str] = DEFAULT,
) -> list[dict[str, Any]]:
    """Code ``items`` with each setting (the values of one method) and score every
    reconstruction with ``metrics``; ``skip`` holds (setting index, item index) pairs
    already stored.

    The metrics' work on each original (its SSIM statistics) is done once for all settings.
    """
    check_started()
    rows = []
    scorers = [Scorer(metrics, item.pixels, item.binary) for item in items]
    for s_index, setting in enumerate(settings):
        todo = [i for i in range(len(items)) if (s_index, i) not in skip]
        if not todo:
            continue
        codings = _code(setting, [items[i].pixels for i in todo])
        for i, coding in zip(todo, codings, strict=True):
            scored = scorers[i](_checked(setting, items[i], coding))
            rows += _rows(setting, items[i], coding, scored, common)
    return rows


def _code(setting: Setting, arrays: list[np.ndarray]) -> list[Coding]:
    """The method's codings of ``arrays``. What a plugin's method raises, beyond the
    one-line errors, is one line naming it too (a built-in's is a bug: its traceback shows)."""
    try:
        codings = list(method_for(setting).code(arrays))
    except (BenchError, MethodError, ModelError, PluginError):
        raise
    except Exception as err:
        if METHODS.origin(setting.method).kind == "builtin":
            raise
        message = " ".join(str(err).split())[:200]
        raise BenchError(f"{setting.label} ({_origin(setting)}) failed: "
                         f"{type(err).__name__}: {message}") from None  # fmt: skip
    if len(codings) != len(arrays) or not all(isinstance(c, Coding) for c in codings):
        raise BenchError(
            f"{setting.label} ({_origin(setting)}) returned {len(codings)} codings for "
            f"{len(arrays)} images; code() gives one Coding each"
        )
    return codings


def _checked(setting: Setting, item: NamedImage, coding: Coding) -> np.ndarray:
    decoded = coding.reconstruction
    if (
        not isinstance(decoded, np.ndarray)
        or decoded.shape != item.pixels.shape
        or decoded.dtype != np.uint8
    ):
        got = f"{decoded.dtype} {decoded.shape}" if isinstance(decoded, np.ndarray) else type(
            decoded).__name__  # fmt: skip
        raise BenchError(
            f"{setting.label} {setting.param}={setting.value:g} ({_origin(setting)}) decoded "
            f"{item.name} to {got}, expected uint8 {item.pixels.shape}"
        )
    return decoded


def _origin(setting: Setting) -> str:
    return METHODS.origin(setting.method).label


def _rows(
    setting: Setting, item: NamedImage, coding: Coding, scored: dict[str, float], common: dict
) -> list[dict[str, Any]]:
    """One row per rate kind the coding states, all with the same distortion metrics."""
    taken = (set(ID_COLUMNS) | set(scored) | PATH_COLUMNS) & set(coding.extra)
    if taken:
        raise BenchError(
            f"{setting.label} ({_origin(setting)}) puts column(s) {sorted(taken)} in its "
            "coding's extra columns; the table keeps them for the path's own numbers"
        )
    bad = [kind for kind in coding.rates if kind not in RATE_KINDS]
    if bad:
        raise BenchError(f"{setting.label} ({_origin(setting)}) states rate kind(s) {bad}; "
                         f"rate kinds: {', '.join(sorted(RATE_KINDS))}")  # fmt: skip
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


def run_tasks(
    items: Sequence[NamedImage],
    settings: Sequence[Setting],
    *,
    common: dict[str, Any],
    workers: int | None = None,
    done: set[tuple[str, float, str]] = frozenset(),
    device: str = "cpu",
    metrics: Sequence[str] = DEFAULT,
    progress: bool = True,
) -> Iterator[list[dict[str, Any]]]:
    """Yield the rows of each finished task as soon as it finishes.

    ``common`` goes into every row (dataset, split, run and job ids); ``done`` lists
    (label, value, image) triples already stored, so a resumed run evaluates only the rest;
    ``metrics`` names the metrics that score each reconstruction. With one worker the tasks
    run in this process (its torch thread count is restored after); with more, in spawned
    workers that import this process's plugins again.
    """

    todo = tasks(items, settings, done)
    bar = tqdm(total=sum(len(chunk) for _, chunk, _ in todo), desc="evaluate", unit="img",
               disable=not progress, leave=False)  # fmt: skip
    workers = min(workers or default_workers(), max(len(todo), 1))
    metrics = tuple(metrics)
    try:
        if workers <= 1:
            with in_this_process(device):
                for group, chunk, skip in todo:
                    yield evaluate_items(group, chunk, common, skip, metrics)
                    bar.update(len(chunk))
            return
        context = multiprocessing.get_context("spawn")  # forking a torch process can hang
        with spawnable_main(), ProcessPoolExecutor(
            workers, mp_context=context, initializer=init_worker,
            initargs=(device, portable_origins()),
        ) as pool:  # fmt: skip
            pending: dict[Future, int] = {
                pool.submit(evaluate_items, group, chunk, common, skip, metrics): len(chunk)
                for group, chunk, skip in todo
            }
            try:
                while pending:
                    finished, _ = wait(pending, return_when=FIRST_COMPLETED)
                    for future in finished:
                        bar.update(pending.pop(future))
                        if future.exception() is not None:
                            yield from _finish_running(pending)
                        yield future.result()
            finally:
                for future in pending:
                    future.cancel()
    finally:
        bar.close()
        _BUILT.clear()  # in-process methods hold weights; a later call loads afresh


def _finish_running(pending: dict[Future, int]) -> Iterator[list[dict[str, Any]]]:
    """After a task failed: cancel the tasks not started, and keep the rows of those that
    were running when they finish, so that a failure loses no work already done."""
    for future in list(pending):
        if future.cancel():
            del pending[future]
    for future in list(pending):
        del pending[future]
        if future.exception() is None:
            yield future.result()
