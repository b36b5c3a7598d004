"""Reader for gzipped IDX files, the format of MNIST and Fashion-MNIST.

An IDX file is a big-endian header, ``0x00 0x00 <type> <ndim>`` followed by `ndim` uint32 sizes,
then the data. MNIST uses type 0x08 (unsigned byte): magic 2049 for labels (1-D) and 2051 for
images (3-D: count, rows, columns).
"""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path

import numpy as np

from benchmarks.datasets.errors import DatasetError

UBYTE = 0x08


def read_idx_gz(path: Path, ndim: int) -> np.ndarray:
    """Decompress and parse an IDX file of unsigned bytes with `ndim` dimensions."""
    try:
        raw = gzip.decompress(path.read_bytes())
    except (OSError, EOFError, zlib.error) as err:
        raise DatasetError(f"{path} is not a readable gzip file ({err})") from err
    return parse_idx(raw, ndim, path)


def parse_idx(raw: bytes, ndim: int, source: Path | str = "<bytes>") -> np.ndarray:
    """Parse uncompressed IDX bytes; `source` only names the file in error messages."""
    expected_magic = (UBYTE << 8) | ndim
    header_size = 4 + 4 * ndim
    if len(raw) < header_size:
        raise DatasetError(f"{source} is truncated: {len(raw)} bytes, shorter than an IDX header")
    magic = int.from_bytes(raw[:4], "big")
    if magic != expected_magic:
        raise DatasetError(
            f"{source} has IDX magic number {magic}, expected {expected_magic} "
            f"(unsigned bytes, {ndim}-D)"
        )
    shape = tuple(int(n) for n in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    expected_size = header_size + int(np.prod(shape))
    if len(raw) != expected_size:
        problem = "truncated" if len(raw) < expected_size else "too long"
        raise DatasetError(
            f"{source} is {problem}: header says shape {shape} ({expected_size} bytes), "
            f"file has {len(raw)} bytes"
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=header_size).reshape(shape).copy()
