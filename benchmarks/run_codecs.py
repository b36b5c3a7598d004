"""Evaluate codecs over a set of images: one result row per (codec, value, image).

Images are independent, so (image, codec) pairs run in a pool of processes, one per core.
Each worker times ``encode`` and ``decode`` itself with one thread, so timings are per-process
wall time; use ``workers=1`` on an idle machine for the cleanest speed numbers.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass

import numpy as np

from baselines.codec import Codec, codec_class
from benchmarks.datasets import NamedImage
from benchmarks.errors import BenchError
from benchmarks.metrics import ImageMetrics, bits_per_pixel

LN2 = float(np.log(2.0))


@dataclass(frozen=True)
class CodecSweep:
    """One codec and the parameter values to evaluate it at."""

    codec: str
    values: tuple[float, ...]


def parse_values(spec: str) -> list[float]:
    """``"5:95:5"`` (inclusive range), ``"10,50,90"`` or ``"50"`` -> list of numbers."""
    try:
        if ":" in spec:
            start, stop, step = (float(part) for part in spec.split(":"))
            if step <= 0 or stop < start:
                raise ValueError
            count = int(round((stop - start) / step)) + 1
            values = [start + i * step for i in range(count) if start + i * step <= stop + 1e-9]
        else:
            values = [float(part) for part in spec.split(",") if part.strip()]
    except ValueError:
        raise BenchError(
            f"cannot parse values '{spec}': use START:STOP:STEP, a comma list or a number"
        ) from None
    if not values:
        raise BenchError(f"no values in '{spec}'")
    return [int(v) if float(v).is_integer() else round(v, 6) for v in values]


def plan_sweeps(
    codec_specs: Sequence[str], quality: str | None
) -> tuple[list[CodecSweep], list[str]]:
    """Resolve ``--codec NAME[=VALUES]`` options and the shared ``--quality`` sweep.

    ``--quality`` applies to codecs whose parameter is a quality; lossless codecs run once at
    their default level, and other parameters (JPEG 2000's target PSNR) use their own default
    sweep unless given as ``NAME=VALUES``. Returns the sweeps and notes for the user.
    """
    sweeps, notes = [], []
    for spec in codec_specs:
        name, _, own_values = spec.partition("=")
        cls = codec_class(name.strip())
        if own_values:
            values = parse_values(own_values)
        elif cls.lossless:
            values = [cls.param.default]
        elif quality is not None and cls.param.name == "quality":
            values = parse_values(quality)
        else:
            values = list(cls.param.default_sweep)
            if quality is not None:
                notes.append(
                    f"{cls.name}: --quality does not set its {cls.param.name}; using "
                    f"{_format_values(values)} (give {cls.name}=START:STOP:STEP to change)"
                )
        for value in values:
            cls.param.check(cls.name, value)
        sweeps.append(CodecSweep(cls.name, tuple(values)))
    if not sweeps:
        raise BenchError("no codec given (use --codec NAME, see `vlae-bench codecs --list`)")
    return sweeps, notes


def _format_values(values: Sequence[float]) -> str:
    return ",".join(f"{v:g}" for v in values)


def evaluate_image(
    image: NamedImage, sweep: CodecSweep, common: dict[str, object]
) -> list[dict[str, object]]:
    """Encode, decode and measure one image at every value of one codec's sweep."""
    cls = codec_class(sweep.codec)
    height, width = image.pixels.shape[:2]
    channels = image.pixels.shape[2] if image.pixels.ndim == 3 else 1
    measure = ImageMetrics(image.pixels)
    rows = []
    for value in sweep.values:
        codec: Codec = cls(value)
        start = time.perf_counter()
        data = codec.encode(image.pixels)
        enc_s = time.perf_counter() - start
        start = time.perf_counter()
        decoded = codec.decode(data)
        dec_s = time.perf_counter() - start
        if decoded.shape != image.pixels.shape or decoded.dtype != np.uint8:
            raise BenchError(
                f"{codec!r} decoded {image.name} to {decoded.dtype} {decoded.shape}, "
                f"expected uint8 {image.pixels.shape}"
            )
        bits = len(data) * 8
        rows.append(
            {
                **common,
                "method": codec.name,
                "param": codec.param.name,
                "value": codec.value,
                "image": image.name,
                "rate_kind": "coded",
                "bpp": bits_per_pixel(len(data), height, width),
                "bits_per_dim": bits / (height * width * channels),
                "rate_nats": bits * LN2,
                **measure(decoded),
                "enc_s": enc_s,
                "dec_s": dec_s,
                "height": height,
                "width": width,
                "n_bytes": len(data),
            }
        )
    return rows


def _init_worker() -> None:
    import torch

    torch.set_num_threads(1)


def default_workers() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def run_codecs(
    images: Sequence[NamedImage],
    sweeps: Sequence[CodecSweep],
    *,
    dataset: str,
    run_id: str,
    versions: dict[str, str],
    workers: int | None = None,
    skip: set[tuple[str, float, str]] = frozenset(),
    progress: bool = True,
) -> Iterator[list[dict[str, object]]]:
    """Yield the rows of each finished (image, codec) pair, as soon as it finishes.

    ``skip`` holds (codec, value, image) triples already in the store, so resuming an
    interrupted run evaluates only what is missing.
    """
    from tqdm import tqdm

    common = {"dataset": dataset, "run_id": run_id, "versions": json.dumps(versions)}
    tasks = []
    for img in images:
        for sw in sweeps:
            missing = tuple(v for v in sw.values if (sw.codec, float(v), img.name) not in skip)
            if missing:
                tasks.append((img, CodecSweep(sw.codec, missing)))
    bar = tqdm(total=len(tasks), desc="codecs", unit="img", disable=not progress)
    workers = min(workers or default_workers(), max(len(tasks), 1))
    try:
        if workers <= 1:
            _init_worker()
            for img, sweep in tasks:
                yield evaluate_image(img, sweep, common)
                bar.update()
            return
        context = multiprocessing.get_context(
            "spawn"
        )  # forking a process that holds torch threads can hang
        with ProcessPoolExecutor(workers, mp_context=context, initializer=_init_worker) as pool:
            pending: set[Future] = {pool.submit(evaluate_image, i, s, common) for i, s in tasks}
            try:
                while pending:
                    done, pending = wait(pending, return_when=FIRST_COMPLETED)
                    for future in done:
                        bar.update()
                        yield future.result()
            finally:
                for future in pending:
                    future.cancel()
    finally:
        bar.close()
