"""Mutated streams: does a decoder fail cleanly on truncated, bit-flipped and spliced input?

:func:`fuzz` encodes a few real images with a method that writes streams, mutates the streams
(``truncated``: cut at a random byte; ``bit-flipped``: 1 to 8 random bits flipped;
``spliced``: the head of one stream joined to the tail of another), and decodes each. Half of
the streams also get their trailing CRC-32 recomputed (``crc-fixed``), so that the container's
checksum does not hide what the header parser and the entropy decoder do with garbage.

Each outcome is ``refused`` (a :class:`~baselines.method.MethodError`, the one-line kind) or
``decoded`` (a uint8 image of 2 or 3 dimensions); anything else, another exception or a wrong
dtype, is a ``failure``. A segfault or a hang kills the process, so run this in a subprocess
(``vlae-bench fuzz`` is one) with a timeout.
"""

from __future__ import annotations

import time
import warnings
import zlib
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np

from baselines.codec import Codec
from baselines.method import MethodError, plan
from benchmarks.datasets import load_items
from benchmarks.evaluation.workers import in_this_process

KINDS = ("truncated", "bit-flipped", "spliced")


@dataclass
class FuzzReport:
    counts: Counter = field(default_factory=Counter)  # (kind, crc, outcome) -> streams
    failures: list[str] = field(default_factory=list)
    slowest_s: float = 0.0

    @property
    def total(self) -> int:
        return sum(self.counts.values())


def mutations(streams: Sequence[bytes], n: int, seed: int = 0) -> Iterator[tuple[str, bool, bytes]]:
    """n mutated streams as (kind, crc_fixed, bytes), kinds and CRC fixing in turn. A draw
    that gives back an intact stream (a splice where two streams' equal headers meet, a bit
    flipped twice) is drawn again: it is not a mutation."""
    rng = np.random.default_rng(seed)
    intact = set(streams)
    for i in range(n):
        kind, fix = KINDS[i % 3], bool((i // 3) % 2)
        data = streams[i % len(streams)]
        while data in intact:
            data = _mutate(kind, streams[i % len(streams)], streams[(i + 1) % len(streams)], rng)
        if fix and len(data) >= 4:
            data = data[:-4] + zlib.crc32(data[:-4]).to_bytes(4, "big")
        yield kind, fix, data


def _mutate(kind: str, stream: bytes, other: bytes, rng: np.random.Generator) -> bytes:
    data = bytearray(stream)
    if kind == "truncated":
        return bytes(data[: int(rng.integers(0, len(data)))])
    if kind == "bit-flipped":
        for _ in range(int(rng.integers(1, 9))):
            pos = int(rng.integers(0, len(data) * 8))
            data[pos // 8] ^= 1 << (pos % 8)
        return bytes(data)
    head, tail = int(rng.integers(0, len(data))), int(rng.integers(0, len(other)))
    return bytes(data[:head]) + other[tail:]


def fuzz(method: Codec, images: Sequence[np.ndarray], n: int, seed: int = 0) -> FuzzReport:
    """Decode ``n`` mutations of the streams of ``images`` with ``method`` (set up already)."""
    streams = [method.encode(image) for image in images]
    report = FuzzReport()
    for kind, fixed, data in mutations(streams, n, seed):
        start = time.perf_counter()
        outcome = _decode_outcome(method, data, report)
        report.slowest_s = max(report.slowest_s, time.perf_counter() - start)
        report.counts[(kind, "crc-fixed" if fixed else "crc-kept", outcome)] += 1
    return report


def _decode_outcome(method: Codec, data: bytes, report: FuzzReport) -> str:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            decoded = method.decode(data)
    except MethodError:
        return "refused"
    except Exception as err:  # the point is to find these
        report.failures.append(f"{type(err).__name__}: {' '.join(str(err).split())[:120]}")
        return "failure"
    is_image = isinstance(decoded, np.ndarray) and decoded.ndim in (2, 3)
    if not is_image or decoded.dtype != np.uint8:
        shape = getattr(decoded, "shape", "")
        report.failures.append(f"decoded to {type(decoded).__name__} {shape}")
        return "failure"
    return "decoded"


def fuzz_spec(
    spec: str,
    dataset: str,
    *,
    data_dir=None,
    limit: int = 2,
    n: int = 600,
    seed: int = 0,
    device: str = "cpu",
) -> FuzzReport:
    """:func:`fuzz` for one ``--codec`` spec (one setting) on ``limit`` items of ``dataset``:
    any method that writes streams (every :class:`~baselines.codec.Codec`, plugins too)."""
    settings, _ = plan([spec], None)
    if len(settings) != 1:
        raise MethodError(f"{spec} names {len(settings)} settings; give one value")
    method = settings[0].build()
    if not isinstance(method, Codec):
        raise MethodError(f"{settings[0].label} writes no stream to mutate (not a codec)")
    images = [item.pixels for item in load_items(dataset, data_dir=data_dir, limit=limit)]
    with in_this_process(device):  # one torch thread: small ops on busy cores crawl with more
        method.setup(device)
        if not method.writes_stream:
            raise MethodError(f"{settings[0].label} writes no stream to mutate (no compress)")
        return fuzz(method, images, n, seed)
