"""The MNIST family as uint8 arrays of shape (N, 28, 28).

Splits, the same names for every variant, chosen so that train, valid and test never overlap:

- ``train``: the first 50,000 rows of the MNIST training file;
- ``valid``: its last 10,000 rows;
- ``trainval``: all 60,000 rows (train followed by valid, the original training split);
- ``test``: the 10,000 rows of the test file.

For ``binarized-mnist`` (Larochelle & Murray's fixed sample) train/valid/test are its own three
files, and trainval is train followed by valid. Its valid rows come from the MNIST training file
but are not the same 10,000 as MNIST's valid split, and it ships no labels.

``dynamic-binarized-mnist`` draws pixel ~ Bernoulli(pixel / 255) from MNIST, seeded by `seed`;
the training file is binarized as a whole and then sliced, so train/valid/trainval agree row
for row under one seed.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import scipy.io

from benchmarks.datasets.errors import DatasetError
from benchmarks.datasets.fetch import resolve_files
from benchmarks.datasets.idx import read_idx_gz
from benchmarks.datasets.registry import get_spec

SPLITS = ("train", "valid", "trainval", "test")
# split -> (file prefix, rows of that file)
_IDX_SPLITS = {
    "train": ("train", slice(0, 50_000)),
    "valid": ("train", slice(50_000, 60_000)),
    "trainval": ("train", slice(None)),
    "test": ("t10k", slice(None)),
}
_STREAM = {"train": 0, "t10k": 1}  # keeps the train and test files' random draws independent
_PIXELS = 28 * 28


def load_array(name: str, split: str, data_dir: Path | None = None, seed: int = 0) -> np.ndarray:
    """Images of an MNIST-style dataset as a C-contiguous uint8 array (N, 28, 28).

    ``mnist`` and ``fashion-mnist`` hold 0..255; ``binarized-mnist`` and
    ``dynamic-binarized-mnist`` hold 0/1. `split` is one of train, valid, trainval, test (see the
    module docstring for the rows); `seed` only matters for ``dynamic-binarized-mnist``.
    """
    spec = get_spec(name)
    if spec.kind != "arrays":
        raise DatasetError(f"{name!r} is an image dataset: use load_images, not load_array")
    _check_split(name, split)
    if name == "binarized-mnist":
        return _static_binarized(split, data_dir)
    prefix, rows = _IDX_SPLITS[split]
    images = _read_idx(name, f"{prefix}-images", 3, data_dir)
    if images.shape[1:] != (28, 28):
        raise DatasetError(f"{name} {prefix}-images are {images.shape[1:]}, expected 28x28")
    if name == "dynamic-binarized-mnist":
        images = bernoulli_sample(images, seed, _STREAM[prefix])
    return np.ascontiguousarray(images[rows])


def load_labels(name: str, split: str, data_dir: Path | None = None) -> np.ndarray | None:
    """Class labels (uint8 0..9) matching `load_array(name, split)`, or None if the set has none."""
    spec = get_spec(name)
    if spec.kind != "arrays":
        raise DatasetError(f"{name!r} is an image dataset and has no labels")
    _check_split(name, split)
    if name == "binarized-mnist":
        return None
    prefix, rows = _IDX_SPLITS[split]
    return np.ascontiguousarray(_read_idx(name, f"{prefix}-labels", 1, data_dir)[rows])


def bernoulli_sample(images: np.ndarray, seed: int, stream: int = 0) -> np.ndarray:
    """A 0/1 uint8 array with P(1) = pixel / 255, reproducible from (seed, stream)."""
    if seed < 0:
        raise DatasetError(f"seed must be a non-negative integer, got {seed}")
    rng = np.random.default_rng([seed, stream])
    uniform = rng.random(images.shape, dtype=np.float32)
    return (uniform < images / np.float32(255)).astype(np.uint8)


def read_amat(path: Path) -> np.ndarray:
    """Parse a Larochelle .amat file (one image per line, 784 space-separated 0/1) to (N, 784)."""
    raw = path.read_bytes()
    line = 2 * _PIXELS  # "d d d ... d\n": one digit and one separator per pixel
    if raw and len(raw) % line == 0:
        # Fast path for the canonical layout: every other byte is a digit.
        table = np.frombuffer(raw, dtype=np.uint8).reshape(-1, line)
        separators = table[:, 1::2]
        if (separators[:, :-1] == ord(" ")).all() and (separators[:, -1] == ord("\n")).all():
            return _binary_rows(table[:, ::2] - ord("0"), path)
    # Anything else (CRLF endings, tabs, trailing blanks): tokenize, slower but tolerant.
    tokens = raw.split()
    if not tokens or len(tokens) % _PIXELS:
        raise DatasetError(f"{path}: {len(tokens)} values is not a whole number of 784-pixel rows")
    try:
        values = np.array(tokens, dtype=np.int64)
    except ValueError as err:
        raise DatasetError(f"{path}: non-numeric value in .amat text ({err})") from err
    return _binary_rows(values.reshape(-1, _PIXELS), path)


def read_binarized_mat(path: Path) -> np.ndarray:
    """Read variable X, (N, 784) of 0/1, from a MATLAB .mat file."""
    try:
        contents = scipy.io.loadmat(path)
    except (OSError, ValueError, TypeError) as err:
        raise DatasetError(f"{path} is not a readable MATLAB file ({err})") from err
    if "X" not in contents:
        raise DatasetError(f"{path} has no variable X (found: {', '.join(sorted(contents))})")
    values = np.asarray(contents["X"])
    if values.ndim != 2 or values.shape[1] != _PIXELS:
        raise DatasetError(f"{path}: X has shape {values.shape}, expected (N, 784)")
    return _binary_rows(values, path)


def _binary_rows(values: np.ndarray, path: Path) -> np.ndarray:
    rows = np.ascontiguousarray(values, dtype=np.uint8)
    out_of_range = values.size and (values.min() < 0 or values.max() > 1)
    # A float array (e.g. 0.5) would pass the range test; compare with its uint8 cast too.
    if out_of_range or (rows.dtype != values.dtype and not np.array_equal(rows, values)):
        raise DatasetError(f"{path} holds values other than 0 and 1")
    return rows


def _static_binarized(split: str, data_dir: Path | None) -> np.ndarray:
    if split == "trainval":
        return np.concatenate(
            [_static_binarized("train", data_dir), _static_binarized("valid", data_dir)]
        )
    path = resolve_files(get_spec("binarized-mnist"), [split], data_dir)[split]
    rows = read_amat(path) if path.suffix == ".amat" else read_binarized_mat(path)
    return rows.reshape(-1, 28, 28)


def _read_idx(name: str, key: str, ndim: int, data_dir: Path | None) -> np.ndarray:
    path = resolve_files(get_spec(name), [key], data_dir)[key]
    return read_idx_gz(path, ndim)


def _check_split(name: str, split: str) -> None:
    if split not in SPLITS:
        raise DatasetError(f"{name} has no split {split!r}; choose one of {', '.join(SPLITS)}")
