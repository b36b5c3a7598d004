"""Throughput: each phase of a model or codec timed on its own, as tidy rows.

What ``vlae-bench throughput TARGET`` measures. TARGET is a registered model name (default
config, fresh weights), a checkpoint or ``zoo:NAME``, or any method of the method protocol
(``jpeg=50``, ``bmshj2018-hyperprior:zoo:hyperprior-photos-0.013``, ``model:CKPT``).

Phases, each timed alone (a model gets every phase it has; a codec method, encode/decode):

* ``train_step``: forward, loss, backward and optimizer step
  (:func:`vlae_models.train.training_step`);
* ``forward``: the inference forward pass (rate and distortion per image);
* ``encode`` / ``decode``: to bytes and back (``compress``/``decompress`` of a model, a codec's
  ``encode``/``decode`` per image);
* ``sample``: for autoregressive decoders, drawing images from the prior pixel by pixel.

Method: ``warmup`` untimed calls, then ``repeats`` timed ones; the rows give the median (p50)
and p95 latency of one call and the interquartile spread, images/s and pixels/s at the
median. On CUDA each call is timed by CUDA events after a synchronisation and the peak is
``torch.cuda.max_memory_allocated`` (``mem_kind="cuda_max_allocated"``); on a CPU by
``perf_counter``, with the peak resident set size of the process sampled every millisecond
during the phase (``mem_kind="rss_peak"``), the thread count and the CPU model recorded.
``entropy_share`` is the part of a call spent inside the entropy coder (CompressAI's entropy
models and rANS coder), timed by wrapping those functions for the measurement only.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import math
import platform
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import psutil
import torch
from torch.utils.data import DataLoader, Dataset

from baselines.codec import Codec
from baselines.method import METHODS, plan
from benchmarks.datasets import DatasetError, load_items
from benchmarks.datasets.pixels import load_pixels
from benchmarks.errors import BenchError
from benchmarks.results import ALL_IMAGES
from benchmarks.runs.store import Job, RunStore
from vlae_models.checkpoint import load
from vlae_models.core import MODELS, build, compile_networks
from vlae_models.train import (
    EpochBatches,
    TrainConfig,
    TrainState,
    make_optimizer,
    resolve_device,
    training_step,
)
from vlae_models.zoo import resolve

PHASES = ("train_step", "forward", "encode", "decode", "sample")
WHEN = {  # which targets have a phase
    "train_step": "models only", "forward": "models only",
    "encode": "models with compress, and codecs", "decode": "models with compress, and codecs",
    "sample": "autoregressive decoders only: drawing pixel by pixel",
}  # fmt: skip
# Asked for by name: one training step *with its batching*, from the training loop's in-memory
# batches (``train_loop``) and from a generic per-item torch DataLoader (``dataloader_loop``).
LOOP_PHASES = ("train_loop", "dataloader_loop")
DTYPES = ("fp32", "bf16", "fp16")


def parse_batch_sizes(text: str) -> tuple[int, ...]:
    """``"1,8,64"`` -> (1, 8, 64); anything else is a one-line error."""
    try:
        sizes = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        sizes = ()
    if not sizes or min(sizes) < 1:
        raise BenchError(f"batch sizes must be positive integers, a comma list; got {text!r}")
    return sizes


@dataclass
class Target:
    """What is timed: a model (every phase) or a codec method (encode/decode per image)."""

    label: str
    model: Any = None  # a LatentModel
    method: Any = None  # a baselines Method with encode/decode
    source: str | None = None  # the checkpoint or zoo name the weights came from


def resolve_target(ref: str, device: str = "cpu") -> Target:
    """A model name, a checkpoint path or ``zoo:NAME``, or a method spec (see the module doc)."""
    if ref in MODELS:
        return Target(ref, model=build(ref).to(device))  # fresh weights: no checkpoint
    if ref.startswith("zoo:") or Path(ref).suffix == ".safetensors":
        model, meta = load(resolve(ref), device=device)
        return Target(meta["model"], model=model, source=ref)
    if ref.partition("=")[0].partition(":")[0] not in METHODS:
        raise BenchError(
            f"unknown throughput target {ref!r}: give a model name (`vlae-bench models`), "
            "a checkpoint, zoo:NAME, or a method (`vlae-bench codecs --list`)"
        )
    settings, _ = plan([ref], None)
    if len(settings) != 1:
        raise BenchError(f"{ref!r} names {len(settings)} settings; give one value (jpeg=50)")
    method = settings[0].build()
    method.setup(device)
    if not (isinstance(method, Codec) and method.writes_stream):
        raise BenchError(f"{ref!r} writes no bytes: nothing to encode or decode")
    return Target(f"{settings[0].label}", method=method, source=settings[0].source)


@dataclass
class Timing:
    """Seconds per timed call, and the phase's peak memory."""

    seconds: list[float]
    peak_mem_mb: float
    mem_kind: str
    entropy_s: list[float] = field(default_factory=list)

    def row(self, items: int, pixels_per_item: int) -> dict[str, Any]:
        s = np.asarray(self.seconds)
        p25, p50, p75, p95 = np.percentile(s, [25, 50, 75, 95])
        share = float(np.median(self.entropy_s) / p50) if self.entropy_s else math.nan
        return {
            "images_per_s": items / p50, "pixels_per_s": items * pixels_per_item / p50,
            "p50_ms": 1e3 * p50, "p95_ms": 1e3 * p95, "iqr_ms": 1e3 * (p75 - p25),
            "min_ms": 1e3 * float(s.min()), "peak_mem_mb": self.peak_mem_mb,
            "mem_kind": self.mem_kind, "entropy_share": share, "repeats": len(s),
        }  # fmt: skip


def time_calls(fn: Callable[[], Any], device: Any, repeats: int, warmup: int) -> Timing:
    """``warmup`` untimed calls, then ``repeats`` timed ones (CUDA events on a GPU)."""
    for _ in range(warmup):
        fn()
    cuda = device.type == "cuda"
    clock = _EntropyClock()
    seconds, entropy = [], []
    with _MemoryPeak(device) as memory, clock.installed():
        for _ in range(repeats):
            clock.elapsed = 0.0
            if cuda:
                torch.cuda.synchronize(device)
                start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(True)
                start.record()
                fn()
                end.record()
                torch.cuda.synchronize(device)
                seconds.append(start.elapsed_time(end) / 1e3)
            else:
                began = time.perf_counter()
                fn()
                seconds.append(time.perf_counter() - began)
            entropy.append(clock.elapsed)
    return Timing(seconds, memory.peak_mb, memory.kind, entropy if any(entropy) else [])


class _MemoryPeak:
    """Peak memory during a block: CUDA's allocator peak, or the process's sampled RSS."""

    def __init__(self, device: Any) -> None:
        self.device, self.peak_mb = device, math.nan
        self.kind = "cuda_max_allocated" if device.type == "cuda" else "rss_peak"

    def __enter__(self) -> _MemoryPeak:
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
            return self

        self._process, self._stop = psutil.Process(), threading.Event()
        self._peak = self._process.memory_info().rss
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.wait(0.001):
            self._peak = max(self._peak, self._process.memory_info().rss)

    def __exit__(self, *_: Any) -> None:
        if self.device.type == "cuda":
            self.peak_mb = torch.cuda.max_memory_allocated(self.device) / 2**20
            return
        self._stop.set()
        self._thread.join()
        self.peak_mb = max(self._peak, self._process.memory_info().rss) / 2**20


class _EntropyClock:
    """Time spent inside the entropy coder: CompressAI's entropy models' compress/decompress
    and its rANS coders, wrapped while a measurement runs (nested calls count once)."""

    def __init__(self) -> None:
        self.elapsed, self._depth = 0.0, 0

    def _wrap(self, fn: Callable) -> Callable:
        @functools.wraps(fn)
        def timed(*args: Any, **kwargs: Any) -> Any:
            self._depth += 1
            began = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self._depth -= 1
                if self._depth == 0:
                    self.elapsed += time.perf_counter() - began

        return timed

    @contextlib.contextmanager
    def installed(self) -> Iterator[None]:
        # Imported when coding is timed: compressai's import alone costs seconds.
        from compressai import ans, entropy_models

        from vlae_models import entropy

        targets = [
            (cls, name)
            for cls in (entropy_models.EntropyModel, entropy_models.EntropyBottleneck,
                        entropy.CategoricalCoder)
            for name in ("compress", "decompress") if name in cls.__dict__
        ] + [(ans.RansEncoder, "encode_with_indexes"), (ans.RansDecoder, "decode_with_indexes"),
             (ans.BufferedRansEncoder, "encode_with_indexes"), (ans.BufferedRansEncoder, "flush"),
             (ans.RansDecoder, "decode_stream")]  # fmt: skip
        originals = [(cls, name, cls.__dict__[name]) for cls, name in targets]
        try:
            for cls, name, fn in originals:
                setattr(cls, name, self._wrap(fn))
            yield
        finally:
            for cls, name, fn in originals:
                setattr(cls, name, fn)


def machine(device: Any) -> dict[str, Any]:
    """Where the numbers were measured: device, CPU model, threads, versions."""
    info = {"device": str(device), "cpu": cpu_model(), "threads": torch.get_num_threads(),
            "torch": torch.__version__}  # fmt: skip
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as info:
            for line in info:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def sample_batch(target: Target, batch_size: int, data_dir: Any = None) -> tuple[Any, str]:
    """``batch_size`` real images the target takes, uint8 (B, C, H, W), and their dataset: test
    images of the data a model was made for (binarized MNIST, MNIST, or Kodak patches at its
    size; the photos bundled with scikit-image where Kodak is not found)."""
    config = target.model.config
    size, channels = config.image_size, config.in_channels
    binary = bool(getattr(target.model.likelihood, "binary", False))
    if channels == 1 and size == 28:
        data = "binarized-mnist" if binary else "mnist"
        pixels = load_pixels(data, "test", data_dir)
    else:
        try:
            data = f"kodak:patches={size}"
            pixels = load_pixels(data, "all", data_dir)
        except DatasetError:
            data = f"embedded:patches={size}"
            pixels = load_pixels(data, "all", data_dir)
        if channels == 1:
            pixels = pixels[:, :1]
    repeats = math.ceil(batch_size / len(pixels))
    return torch.cat([pixels] * repeats)[:batch_size].contiguous(), data


def model_phases(
    target: Target, pixels: Any, dtype: str, channels_last: bool, trainee: Any
) -> dict[str, Callable[[], Any]]:
    """The callables to time for a model on one batch: each phase it has. ``trainee`` is an
    eager copy of the model that the training step updates (the timed model stays as is)."""
    model = target.model
    device = next(model.parameters()).device
    x = model.prepare(pixels.to(device))
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    cast = _autocast(device, dtype)
    phases: dict[str, Callable[[], Any]] = {}

    trainee.train()
    config = TrainConfig(steps=1, batch_size=len(x), ema_decay=0.0, progress=False)
    state = TrainState(trainee, make_optimizer(trainee, config), None)

    def train_step() -> None:
        with cast:
            training_step(state, x, config, trainee.free_bits_nats)

    phases["train_step"] = train_step
    phases.update(_loop_phases(trainee, pixels, config))

    def forward() -> None:
        with torch.no_grad(), cast:
            model(x)

    phases["forward"] = forward
    codec = _codec_face(model)
    if codec is not None:
        compress, decompress = codec
        coded = compress(x)
        phases["encode"] = lambda: compress(x)
        phases["decode"] = lambda: decompress(coded)
    if getattr(model, "autoregressive", False):

        def sample() -> None:
            with torch.no_grad(), cast:
                model.sample(len(x), mode="sample")

        phases["sample"] = sample
    return phases


def _loop_phases(model: Any, pixels: Any, config: Any) -> dict[str, Callable[[], Any]]:
    """A training step with its batching, two ways, on the same model and batch size: the
    training loop's (index the in-memory uint8 tensor, :class:`EpochBatches`), and a generic
    ``DataLoader`` that builds each batch from per-item float tensors (shuffled, default
    collate, no worker processes)."""
    data = torch.cat([pixels] * max(1, 4096 // len(pixels)))  # several batches to draw from
    batches = EpochBatches(len(data), len(pixels), seed=0)
    state = TrainState(model, make_optimizer(model, config), None)
    binary = bool(getattr(model.likelihood, "binary", False))

    def train_loop() -> None:
        x = model.prepare(data[batches.indices(state.step)])
        training_step(state, x, config, model.free_bits_nats)

    class PerItem(Dataset):
        def __len__(self) -> int:
            return len(data)

        def __getitem__(self, i: int) -> Any:
            item = torch.from_numpy(data[i].numpy()).float()
            return item if binary else item / 255.0

    loader = DataLoader(PerItem(), batch_size=len(pixels), shuffle=True, drop_last=True)
    stream = iter(loader)

    def dataloader_loop() -> None:
        nonlocal stream
        try:
            x = next(stream)
        except StopIteration:
            stream = iter(loader)
            x = next(stream)
        training_step(state, x, config, model.free_bits_nats)

    return {"train_loop": train_loop, "dataloader_loop": dataloader_loop}


def _codec_face(model: Any) -> tuple[Callable, Callable] | None:
    """compress/decompress of a model with a codec face (ours, or a CompressAI net's)."""
    net = model.net if hasattr(model, "net") and hasattr(model.net, "compress") else model
    if not hasattr(net, "compress"):
        return None
    if net is not model:
        net.update(force=True)

    @torch.no_grad()
    def compress(x: Any) -> Any:
        return net.compress(x)

    @torch.no_grad()
    def decompress(coded: Any) -> Any:
        return net.decompress(coded["strings"], coded["shape"])

    return compress, decompress


def _autocast(device: Any, dtype: str) -> contextlib.AbstractContextManager:
    if dtype == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype={"bf16": torch.bfloat16, "fp16": torch.float16}[dtype])


def codec_phases(target: Target, images: Sequence[np.ndarray]) -> dict[str, Callable[[], Any]]:
    """A codec method, one call coding the whole batch of images one at a time."""
    method = target.method
    streams = [method.encode(image) for image in images]
    return {
        "encode": lambda: [method.encode(image) for image in images],
        "decode": lambda: [method.decode(data) for data in streams],
    }


def codec_images(
    target: Target, batch_size: int, data_dir: Any = None, dataset: str | None = None
) -> tuple[list[np.ndarray], str]:
    """Images a codec takes, and their dataset: ``dataset``'s items when given; for a codec
    built on a model (a checkpoint as a codec, bits-back coding) test images of the model's
    data; else whole Kodak images (or the bundled photos, offline)."""
    if dataset is not None:
        items = load_items(dataset, data_dir=data_dir, limit=batch_size)
        return [items[i % len(items)].pixels for i in range(batch_size)], dataset
    model = getattr(target.method, "model", None)
    if model is not None:
        pixels, data = sample_batch(Target(target.label, model=model), batch_size, data_dir)
        arrays = pixels.permute(0, 2, 3, 1).numpy()
        return [a[..., 0] if a.shape[-1] == 1 else a for a in arrays], data
    try:
        data, items = "kodak", load_items("kodak", data_dir=data_dir)
    except DatasetError:
        data, items = "embedded", load_items("embedded", data_dir=data_dir)
    return [items[i % len(items)].pixels for i in range(batch_size)], data


def measure(
    target: Target,
    *,
    device: str = "cpu",
    batch_sizes: Sequence[int] = (1, 8, 64),
    dtype: str = "fp32",
    compile: bool = False,
    channels_last: bool = False,
    repeats: int = 10,
    warmup: int = 2,
    phases: Sequence[str] = PHASES,
    data_dir: Any = None,
    dataset: str | None = None,
    images: Sequence[np.ndarray] | None = None,
    echo: Callable[[str], None] = lambda _: None,
) -> list[dict[str, Any]]:
    """Time each phase of ``target`` at each batch size; one row per (phase, batch size).
    A codec codes ``images`` when given (cycled to the batch size), else ``dataset``'s
    (:func:`codec_images`)."""
    if dtype not in DTYPES:
        raise BenchError(f"dtype must be one of {DTYPES}, got {dtype!r}")
    unknown = sorted(set(phases) - set(PHASES) - set(LOOP_PHASES))
    if unknown:
        raise BenchError(f"unknown phase(s) {unknown}; phases: {', '.join(PHASES + LOOP_PHASES)}")
    torch_device = torch.device(device)
    if target.model is not None:
        target.model.to(torch_device).eval()
        if channels_last:
            target.model.to(memory_format=torch.channels_last)
        trainee = copy.deepcopy(target.model)
        if compile:
            compile_networks(target.model)
    common = {
        "method": target.label, "checkpoint": target.source,
        "dtype": dtype if target.model is not None else "uint8",  # a codec codes 8-bit arrays
        "compiled": compile, "channels_last": channels_last, **machine(torch_device),
    }  # fmt: skip
    rows = []
    for batch_size in batch_sizes:
        check_memory(target, batch_size, data_dir, dataset, images)
        if target.model is not None:
            pixels, data = sample_batch(target, batch_size, data_dir)
            calls = model_phases(target, pixels, dtype, channels_last, copy.deepcopy(trainee))
            per_image = int(pixels.shape[-1] * pixels.shape[-2])
        else:
            if images is None:
                batch, data = codec_images(target, batch_size, data_dir, dataset)
            else:
                batch, data = [images[i % len(images)] for i in range(batch_size)], "given"
            calls = codec_phases(target, batch)
            per_image = int(np.mean([im.shape[0] * im.shape[1] for im in batch]))
        missing = [p for p in phases if p not in calls and p not in LOOP_PHASES]
        if missing and batch_size == batch_sizes[0]:
            echo(f"note: {target.label} has no {', '.join(missing)} phase ({WHEN[missing[0]]})")
        for phase in [p for p in phases if p in calls]:
            # An autoregressive draw of a batch takes H*W steps: a few repeats say enough.
            n = min(repeats, max(3, repeats // 3)) if phase == "sample" else repeats
            timing = time_calls(calls[phase], torch_device, n, 1 if phase == "sample" else warmup)
            row = {**common, "dataset": data, "image": ALL_IMAGES, "phase": phase,
                   "batch_size": batch_size, **timing.row(batch_size, per_image)}  # fmt: skip
            rows.append(row)
            echo(f"{target.label:24} {phase:15} B={batch_size:<4} "
                 f"{row['images_per_s']:10.1f} img/s  p50 {row['p50_ms']:9.2f} ms  "
                 f"p95 {row['p95_ms']:9.2f} ms")  # fmt: skip
    return rows


# Bytes a batch needs per byte of its raw images: a model's float activations (a few dozen
# float32 maps per pixel), a codec's streams and decoded images beside the originals.
MODEL_BYTES_PER_BYTE, CODEC_BYTES_PER_BYTE = 256, 3
MEMORY_SHARE = 0.5  # of the memory available now


def check_memory(
    target: Target, batch_size: int, data_dir: Any, dataset: str | None,
    images: Sequence[np.ndarray] | None,
) -> None:  # fmt: skip
    """Refuse, before building it, a batch that could not fit: its raw images times what a
    model or a codec holds per raw byte, against half the memory available now. (A batch of
    10**8 JPEG images once grew to 20 GB before the machine killed it.)"""
    if target.model is not None:
        c, s = target.model.config.in_channels, target.model.config.image_size
        need = batch_size * c * s * s * MODEL_BYTES_PER_BYTE
    else:
        one = images[0] if images else codec_images(target, 1, data_dir, dataset)[0][0]
        need = batch_size * one.nbytes * CODEC_BYTES_PER_BYTE
    have = psutil.virtual_memory().available
    if need > MEMORY_SHARE * have:
        raise BenchError(
            f"batch size {batch_size} of {target.label} needs about {need / 2**30:.1f} GB; "
            f"{have / 2**30:.1f} GB are available: use a smaller --batch-size"
        )


def throughput_to(
    out: Any,
    targets: Sequence[str],
    *,
    device: str = "cpu",
    overwrite: bool = False,
    echo: Callable[[str], None] = lambda _: None,
    **settings: Any,
) -> Any:
    """Measure every target (see :func:`measure` for ``settings``) into the run folder ``out``;
    a target already measured there with the same settings is kept, not re-timed."""
    resolve_device(device)  # a device this machine lacks: one line, before any work
    config = {"targets": list(targets), "device": device,
              **{k: list(v) if isinstance(v, tuple) else v for k, v in settings.items()
                 if k != "data_dir" and not (k == "dataset" and v is None)}}  # fmt: skip
    store = RunStore(out, Job("throughput", config), overwrite=overwrite)
    done = {row.get("target") for row in store.rows}
    with store.running():
        for ref in targets:
            if ref in done:
                continue
            target = resolve_target(ref, device)
            rows = measure(target, device=device, echo=echo, **settings)
            if not rows:
                asked = ", ".join(settings.get("phases", PHASES))
                raise BenchError(f"{ref} has none of the phases asked for ({asked})")
            store.add([{**row, "target": ref} for row in rows])
            store.flush()
    return store
